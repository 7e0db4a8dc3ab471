# FG-CLIP 2 base, COCO val2017 box classification (paper Table 1).
#   python tools/test.py configs/boxclass/boxclass_fgclip2-base_coco.py
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/boxclass_fgclip2-base.py',
    '../_base_/datasets/boxclass_coco.py',
    '../_base_/schedules/eval-only.py',
]
