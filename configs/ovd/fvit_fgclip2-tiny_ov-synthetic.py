# The OV-COCO detector, shrunk to the tiny FG-CLIP 2 and run on the synthetic world: 10 base kinds
# boxed in training, 4 novel kinds (star, heart, crescent, arrow) never boxed, all 14 evaluated
# (novel / base AP50). CPU-sized: 320 px images, 64-channel pyramid, a few minutes of training.
#   python tools/make_synthetic_world.py work_dirs/synthetic_world --images 2000 --seed 0
#   python tools/train.py configs/ovd/fvit_fgclip2-tiny_ov-synthetic.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/tiny-stage2
#   python tools/test.py configs/ovd/fvit_fgclip2-tiny_ov-synthetic.py \
#       work_dirs/fvit_fgclip2-tiny_ov-synthetic/iter_1000.pth --cfg-options model.backbone.checkpoint=work_dirs/tiny-stage2
_base_ = ['./fvit_fgclip2-base_ov-coco.py']

fgclip2_checkpoint = 'work_dirs/tiny-stage2'   # the tiny model after both pretraining stages
channels = 64     # pyramid width; the ViT width (64) follows the checkpoint
synthetic_world = 'work_dirs/synthetic_world/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond', 'cross', 'crescent',
             'ring', 'arrow', 'pentagon', 'ellipse', 'trapezoid'),
    base_classes=('circle', 'square', 'triangle', 'hexagon', 'diamond', 'cross', 'ring', 'pentagon',
                  'ellipse', 'trapezoid'),
    novel_classes=('star', 'heart', 'crescent', 'arrow'))
image_size = (320, 320)

model = dict(
    backbone=dict(checkpoint=fgclip2_checkpoint),
    neck=dict(necks=[
        dict(type='SimplePyramid', out_channels=channels, in_index=[0, 1, 2, 3],
             scale_factors=(4.0, 2.0, 1.0, 0.5), extra_pool=False, norm_cfg=dict(type='GN', num_groups=16)),
        dict(type='FPN', in_channels=[channels] * 4, out_channels=channels, num_outs=5),
    ]),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(num_classes=14, in_channels=channels, conv_out_channels=channels,
                       num_shared_convs=2, fc_out_channels=256, norm_cfg=dict(type='GN', num_groups=16),
                       background_weight=1.0)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=500),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.8, 1.2), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=synthetic_world, metainfo=metainfo, ann_file='det/instances_train_base.json',
                 data_prefix=dict(img='images/'), filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=synthetic_world, metainfo=metainfo, ann_file='det/instances_val_all.json',
                 data_prefix=dict(img='images/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=synthetic_world + 'det/instances_val_all.json')
test_evaluator = val_evaluator

max_iters = 1000
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters, T_max=max_iters - 100, eta_min=1e-5),
]
auto_scale_lr = dict(enable=False)   # the CPU schedule above is set for its own batch of 4
optim_wrapper = dict(type='OptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
                     clip_grad=dict(max_norm=1.0, norm_type=2))
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
