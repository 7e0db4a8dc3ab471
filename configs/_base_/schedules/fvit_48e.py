# F-ViT's OV-LVIS schedule ("4x"): as fvit_3e.py for 48 epochs, learning rate x 0.1 after epochs 32
# and 44 (F-ViT step=[32, 44]); validation every 12 epochs, as F-ViT.
_base_ = './fvit_3e.py'

max_epochs = 48
train_cfg = dict(max_epochs=max_epochs, val_interval=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[32, 44], gamma=0.1),
]
