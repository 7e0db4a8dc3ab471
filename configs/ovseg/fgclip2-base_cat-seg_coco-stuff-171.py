# Train the cost-aggregation decoder on COCO-Stuff 171 over a frozen FG-CLIP 2 base; evaluate the
# same weights on any vocabulary with the fgclip2-base_cat-seg_<benchmark>.py configs.
# CAT-Seg's schedule: 80k iterations at batch 4 (x 4 GPUs), AdamW 2e-4, wd 1e-4, poly decay.
#   bash tools/dist_train.sh configs/ovseg/fgclip2-base_cat-seg_coco-stuff-171.py 4
#   python tools/test.py configs/ovseg/fgclip2-base_cat-seg_ade20k-150.py work_dirs/.../iter_80000.pth
_base_ = ['../_base_/models/fgclip2-base_cat-seg.py', '../_base_/datasets/coco-stuff-171.py',
          '../_base_/default_runtime.py']

max_iters = 80000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=1500, end=max_iters),
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000, max_keep_ckpts=2,
                                     save_best='mIoU', rule='greater'),
                     visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
