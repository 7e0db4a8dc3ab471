# FG-CLIP 2 base, LVIS v1 val box classification (paper Table 1).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/fgclip2-base_box_classifier.py',
    '../_base_/datasets/boxclass_lvis.py',
]
