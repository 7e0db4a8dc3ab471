_base_ = './boxclass_fgclip2-base_coco.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'))
