# FG-CLIP 2 base, LVIS v1 val box classification (paper Table 1).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/boxclass_fgclip2-base.py',
    '../_base_/datasets/boxclass_lvis.py',
    '../_base_/schedules/eval-only.py',
]
