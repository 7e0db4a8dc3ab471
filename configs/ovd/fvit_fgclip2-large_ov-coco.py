# As fvit_fgclip2-base_ov-coco.py with FG-CLIP 2 large. The neck and box-head widths (1024) follow the
# checkpoint (fgclip2_det/det/widths.py); the default taps for 24 blocks are F-ViT's ViT-L/14 ones
# (blocks 6, 10, 14, 23). F-ViT's /14 models use 896 px on LVIS; FG-CLIP 2 is /16 at every
# size, so the base image size is kept.
_base_ = './fvit_fgclip2-base_ov-coco.py'

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'))
