# F-ViT-style OV-COCO detector on frozen FG-CLIP 2 base (48 base classes boxed, 17 novel scored
# through FG-CLIP 2). F-ViT's recipe: AdamW lr 1e-4, wd 0.1, 3 epochs at batch 64 (8 GPUs x 8),
# background loss weight 0.6, ensemble alpha 0.1 / beta 0.8.
#   python tools/train.py configs/ovd/fvit_fgclip2-base_ov-coco.py
#   bash tools/dist_train.sh configs/ovd/fvit_fgclip2-base_ov-coco.py 8
_base_ = ['../_base_/models/fvit_fgclip2-base.py', '../_base_/datasets/ov_coco.py',
          '../_base_/default_runtime.py']

model = dict(roi_head=dict(bbox_head=dict(num_classes=65, background_weight=0.6),
                           ensemble=dict(alpha=0.1, beta=0.8)))

max_epochs = 3
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[2], gamma=0.1),
]
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
auto_scale_lr = dict(enable=False, base_batch_size=64)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, save_best='coco/novel_ap50', rule='greater'))
