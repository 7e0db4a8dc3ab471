# As fvit_fgclip2-base_ov-coco.py with FG-CLIP 2 so400m. The neck and box-head widths (1152) follow the
# checkpoint (fgclip2_det/det/widths.py) and the default taps its depth (blocks 8, 13, 17, 26 of 27).
# F-ViT's /14 models use 896 px on LVIS; FG-CLIP 2 is /16 at every size, so the base image size is kept.
_base_ = './fvit_fgclip2-base_ov-coco.py'

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-so400m'))
