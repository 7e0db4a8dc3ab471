_base_ = './fgclip2-base_boxclass_coco.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-so400m'))
