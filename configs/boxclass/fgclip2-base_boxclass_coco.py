# FG-CLIP 2 base, COCO val2017 box classification (paper Table 1).
#   python tools/test.py configs/boxclass/fgclip2-base_boxclass_coco.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/fgclip2-base_box_classifier.py',
    '../_base_/datasets/boxclass_coco.py',
]
