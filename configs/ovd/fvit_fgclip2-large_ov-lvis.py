# As fvit_fgclip2-base_ov-lvis.py with FG-CLIP 2 large. The neck and box-head widths (1024) follow the
# checkpoint (fgclip2_det/det/widths.py); the default taps for 24 blocks are F-ViT's ViT-L/14 ones
# (blocks 6, 10, 14, 23). F-ViT's /14 models use 896 px on LVIS; FG-CLIP 2 is /16 at every
# size, so the base image size is kept. F-ViT's ViT-L/14 OV-LVIS config (wusize/CLIPSelf
# F-ViT/configs/ov_lvis/fvit_vitl14_upsample_fpn_bs64_4x_ovlvis_eva_original.py) sets beta 0.4 (noting
# that a larger one, e.g. 0.6 or 0.8, can raise APr); ours follows it.
_base_ = './fvit_fgclip2-base_ov-lvis.py'

model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'), roi_head=dict(ensemble=dict(beta=0.4)))
