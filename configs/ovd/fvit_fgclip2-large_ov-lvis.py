# As fvit_fgclip2-base_ov-lvis.py with FG-CLIP 2 large (width 1024); F-ViT's /14 models use 896 px on
# LVIS, FG-CLIP 2 is /16 at every size, so the base image size is kept.
_base_ = './fvit_fgclip2-base_ov-lvis.py'

embed_dim = 1024
model = dict(
    backbone=dict(checkpoint='checkpoints/fg-clip2-large'),
    neck=dict(necks=[
        dict(type='SimplePyramid', in_channels=embed_dim, out_channels=256, in_index=[0, 1, 2, 3],
             scale_factors=(4.0, 2.0, 1.0, 0.5), extra_pool=False),
        dict(type='FPN', in_channels=[256] * 4, out_channels=256, num_outs=5),
    ]),
    roi_head=dict(bbox_head=dict(embed_dim=embed_dim)))
