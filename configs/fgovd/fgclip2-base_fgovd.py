# FG-CLIP 2 base on FG-OVD (paper Table 1): each box ranked against its own captions
# (lower-cased, no template, box head), correct iff the positive scores highest (ties count).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/fgovd.py',
]

model = dict(
    type='FGCLIP2CaptionRanker',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=False,
        pad_size_divisor=16),
    backbone=dict(type='FGCLIP2ViT', checkpoint='checkpoints/fg-clip2-base', out_indices=[], frozen=True),
    lowercase=True,
    temperature=100.0,
    text_attention_mask=False)  # see _base_/models/fgclip2-base_box_classifier.py
