# FGCLIP2CATSeg (QV fine-tuning of both towers) on the synthetic world with the tiny FG-CLIP 2 (CPU):
# trained on the train split, whose 4 unseen kinds (star, heart, crescent, arrow) are ignore-labelled
# (255) and out of the training forward; evaluated on the val split over all 15 classes.
# ignore_as_negative=False: those ignore-labelled pixels are unseen-kind shapes, which a zero-shot
# protocol must not train on (CAT-Seg counts ignored pixels as negatives of every class).
#   python tools/train.py configs/ovseg/cat-seg_fgclip2-tiny_synthetic.py
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

synthetic_world = 'work_dirs/synthetic_world/'
metainfo = dict(
    classes=('background', 'circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond', 'cross',
             'crescent', 'ring', 'arrow', 'pentagon', 'ellipse', 'trapezoid'),
    novel_classes=('star', 'heart', 'crescent', 'arrow'))
crop_size = (128, 128)

# 128 x 128 views of the 2-block tiny model: an 8 x 8 grid, Swin windows of 4 (shifted by 2).
model = dict(
    backbone=dict(checkpoint='work_dirs/tiny-stage2', out_indices=[0, 1]),
    aggregator=dict(hidden_dim=32, text_guidance_dim=16, appearance_guidance_dim=16, decoder_dims=(32, 16),
                    decoder_guidance_dims=(32, 16), decoder_guidance_proj_dims=(16, 8), window_size=4),
    clip_resolution=crop_size,
    ignore_as_negative=False,
    test_cfg=dict(_delete_=True, mode='whole', pooling_size=(1, 1)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='Resize', scale=(512, 160), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                          'flip_direction')),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=False,
    dataset=dict(_delete_=True, type='OVSegDataset', data_root=synthetic_world, metainfo=metainfo,
                 list_from='seg_maps', data_prefix=dict(img_path='images/', seg_map_path='seg/train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(_delete_=True, type='OVSegDataset', data_root=synthetic_world, metainfo=metainfo,
                 list_from='seg_maps', data_prefix=dict(img_path='images/', seg_map_path='seg/val/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0,
                        end=max_iters)]
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None))
randomness = dict(seed=0)
