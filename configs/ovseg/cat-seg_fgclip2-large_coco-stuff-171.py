# CAT-Seg on FG-CLIP 2 large (24 blocks, width 1024, patch 16): CAT-Seg's L/14 recipe (configs/vitl_336.yaml)
# is its B/16 recipe with the decoder guided by blocks 7 and 15; at patch 16 a 384 view gives the same
# 24 x 24 grid as L/14 at 336, so the window, pooling and crop sizes carry over unchanged.
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large', out_indices=[7, 15]))
