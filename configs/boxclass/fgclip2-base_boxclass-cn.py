# FG-CLIP 2 base, BoxClass-CN (paper Table 1): Chinese names, bare, not lower-cased.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/fgclip2-base_box_classifier.py',
    '../_base_/datasets/boxclass_cn.py',
]
model = dict(text_classifier=dict(language='zh'))
