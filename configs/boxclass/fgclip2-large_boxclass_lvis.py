_base_ = './fgclip2-base_boxclass_lvis.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'))
