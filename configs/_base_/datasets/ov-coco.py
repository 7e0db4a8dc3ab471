# OV-COCO (OVR-CNN split: 48 base / 17 novel classes, generalized evaluation over all 65; see
# docs/official_code.md). Make the annotation files once with
#   python tools/prepare_ov_coco.py --train data/coco/annotations/instances_train2017.json \
#       --val data/coco/annotations/instances_val2017.json --out-dir data/coco/annotations/ov
# OVCocoDataset's default metainfo is the split (fgclip2_det/datasets/ov_splits.py).
# F-ViT recipe: 640 x 640 large-scale jitter (0.1-2.0) and crop, flips.
dataset_type = 'OVCocoDataset'
data_root = 'data/coco/'
image_size = (640, 640)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
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
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/ov/instances_train2017_ov_base.json',
        data_prefix=dict(img='train2017/'),
        drop_novel_annotations=True,    # the detector never sees a novel box
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/ov/instances_val2017_ov_all.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# novel / base AP50 (fractions in 0-1) under coco/, from metainfo['base_classes' / 'novel_classes'].
val_evaluator = dict(type='OVCocoMetric', ann_file=data_root + 'annotations/ov/instances_val2017_ov_all.json',
                     metric='bbox', format_only=False)
test_evaluator = val_evaluator
