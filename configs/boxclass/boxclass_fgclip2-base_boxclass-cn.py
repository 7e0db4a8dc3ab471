# FG-CLIP 2 base, BoxClass-CN (paper Table 1): Chinese names, bare, not lower-cased.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/boxclass_fgclip2-base.py',
    '../_base_/datasets/boxclass_boxclass-cn.py',
    '../_base_/schedules/eval-only.py',
]
model = dict(text_classifier=dict(language='zh'))
