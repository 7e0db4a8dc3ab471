# The cost-aggregation decoder on the synthetic world with the tiny FG-CLIP 2 (CPU): trained on the
# train split, whose 4 unseen kinds (star, heart, crescent, arrow) are ignore-labelled (255) and left
# out of the loss's softmax; evaluated on the val split over all 15 classes (mIoU_seen / mIoU_unseen).
#   python tools/train.py configs/ovseg/cost-decoder_fgclip2-tiny_synthetic.py
#   python tools/test.py configs/ovseg/cost-decoder_fgclip2-tiny_synthetic.py work_dirs/cost-decoder_fgclip2-tiny_synthetic/iter_600.pth
# Training-free baseline on the same split: configs/ovseg/training-free_fgclip2-tiny_synthetic.py
_base_ = ['./cost-decoder_fgclip2-base_coco-stuff-171.py']

synthetic_world = 'work_dirs/synthetic_world/'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond', 'cross',
             'crescent', 'ring', 'arrow', 'pentagon', 'ellipse', 'trapezoid'),
    novel_classes=('star', 'heart', 'crescent', 'arrow'))
crop_size = (256, 256)

model = dict(
    backbone=dict(checkpoint='work_dirs/tiny-stage2', out_indices=[1, 0]),
    decoder=dict(channels=32, guidance_channels=16, num_heads=4),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='RandomResize', scale=(320, 320), ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                          'flip_direction')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=False,
    dataset=dict(type='OVSegDataset', data_root=synthetic_world, metainfo=metainfo, list_from='seg_maps',
                 data_prefix=dict(img_path='images/', seg_map_path='seg/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(type='OVSegDataset', data_root=synthetic_world, metainfo=metainfo, list_from='seg_maps',
                 data_prefix=dict(img_path='images/', seg_map_path='seg/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=50, end=max_iters),
]
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
