# OV-LVIS (LVIS v1; base = common + frequent 866, novel = rare 337 from the `frequency` field; see
# docs/official_code.md). Make the training file (rare annotations removed) once with
#   python tools/prepare_ov_lvis.py --train data/lvis_v1/annotations/lvis_v1_train.json \
#       --out-dir data/lvis_v1/annotations/ov
# Images: COCO 2017 train/val under data/lvis_v1/ (LVIS locates them through coco_url).
# F-ViT recipe (CLIPSelf F-ViT/configs/ov_lvis/fvit_vitb16_upsample_fpn_bs64_4x_ovlvis_eva_original.py):
# 1024 x 1024 large-scale jitter and crop (896 for /14 models), masks, no repeat-factor sampling;
# evaluation keeps 300 detections per image (LVISEval).
dataset_type = 'OVLVISDataset'
data_root = 'data/lvis_v1/'
image_size = (1024, 1024)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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
        ann_file='annotations/ov/lvis_v1_train_norare.json',
        data_prefix=dict(img=''),
        drop_novel_annotations=True,    # the detector never sees a rare-class box
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
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# APr / APc / APf, box and mask (lvis/bbox_APr, lvis/segm_APr), through the lvis compat shim.
val_evaluator = dict(type='LVISMetric', ann_file=data_root + 'annotations/lvis_v1_val.json',
                     metric=['bbox', 'segm'])
test_evaluator = val_evaluator
