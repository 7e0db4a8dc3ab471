# COCO-Stuff 171 (training set of open-vocabulary segmentation, as in CAT-Seg: docs/official_code.md).
# Label maps with 0..170 and 255 = unlabelled, as written by detectron2's
# prepare_coco_stuff_164k_sem_seg.py (stuffthingmaps_detectron2/). 384 x 384 crops, as CAT-Seg
# trains its /16 models.
dataset_type = 'CocoSegDataset'
data_root = 'data/coco/'
crop_size = (384, 384)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='RandomResize', scale=(1536, 384), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                          'flip_direction')),
]
# Test pipelines resize the image only; the label map is loaded afterwards at its original size,
# which the segmentor's predictions are resized back to.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2017/', seg_map_path='stuffthingmaps_detectron2/train2017/'),
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
        data_prefix=dict(img_path='val2017/', seg_map_path='stuffthingmaps_detectron2/val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OVSemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
