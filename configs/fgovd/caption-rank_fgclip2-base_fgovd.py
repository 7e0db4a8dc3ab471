# FG-CLIP 2 base on FG-OVD (paper Table 1): each box ranked against its own captions
# (lower-cased, no template, box head), correct iff the positive scores highest (ties count).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/region-vision_fgclip2-base.py',
    '../_base_/datasets/fgovd.py',
    '../_base_/schedules/eval-only.py',
]

model = dict(
    type='FGCLIP2CaptionRanker',
    lowercase=True,
    temperature=100.0,
    text_attention_mask='auto')  # see _base_/models/boxclass_fgclip2-base.py
