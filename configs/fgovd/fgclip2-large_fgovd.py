_base_ = './fgclip2-base_fgovd.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'))
