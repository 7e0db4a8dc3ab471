_base_ = './boxclass_fgclip2-base_boxclass-cn.py'
model = dict(backbone=dict(checkpoint='checkpoints/fg-clip2-so400m'))
