_base_ = './caption-rank_fgclip2-base_fgovd.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-large'))
