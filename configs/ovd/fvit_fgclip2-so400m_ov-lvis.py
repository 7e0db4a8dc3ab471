# As fvit_fgclip2-base_ov-lvis.py with FG-CLIP 2 so400m. The neck and box-head widths (1152) follow the
# checkpoint (fgclip2_det/det/widths.py) and the default taps its depth (blocks 8, 13, 17, 26 of 27).
# F-ViT's /14 models use 896 px on LVIS; FG-CLIP 2 is /16 at every size, so the base image size is kept.
# F-ViT's ViT-L/14 OV-LVIS config (wusize/CLIPSelf F-ViT/configs/ov_lvis/) sets beta 0.4, noting that a
# larger one raises APr; the base value (0.6, its B/16 config) is kept.
_base_ = './fvit_fgclip2-base_ov-lvis.py'

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-so400m'))
