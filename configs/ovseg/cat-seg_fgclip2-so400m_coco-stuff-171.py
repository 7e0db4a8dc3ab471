# CAT-Seg on FG-CLIP 2 so400m (27 blocks, width 1152, patch 16): the base / large recipe, the decoder
# guided by blocks 8 and 17 (~1/3 and ~2/3 of the depth, as CAT-Seg's 3/7 of 12 and 7/15 of 24).
# Consider model.with_cp=True (gradient checkpointing) on smaller GPUs.
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-so400m', out_indices=[8, 17]))
