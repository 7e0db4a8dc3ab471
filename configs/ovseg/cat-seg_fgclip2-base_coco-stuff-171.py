# CAT-Seg on FG-CLIP 2 base, QV fine-tuning of both towers (FGCLIP2CATSeg), trained on COCO-Stuff 171
# with CAT-Seg's recipe (configs/_base_/models/cat-seg_fgclip2-base.py, schedules/cat-seg_80k.py);
# evaluate the same weights zero-shot with configs/ovseg/cat-seg_fgclip2-base_<benchmark>.py (ADE20K-150/847,
# Pascal Context-59/459, VOC-20/21), or on any vocabulary by overriding the test set.
#   python tools/train.py configs/ovseg/cat-seg_fgclip2-base_coco-stuff-171.py      # 4 images / iteration
#   bash tools/dist_train.sh configs/ovseg/cat-seg_fgclip2-base_coco-stuff-171.py 4 \
#       --cfg-options train_dataloader.batch_size=1
# The A-847 / PC-459 configs set model.aggregator.class_chunk=64 (same numbers, bounded memory).
_base_ = ['../_base_/models/cat-seg_fgclip2-base.py', '../_base_/datasets/coco-stuff-171.py',
          '../_base_/schedules/cat-seg_80k.py', '../_base_/default_runtime.py']

# CAT-Seg's training input (detectron2 mapper "mask_former_semantic"): shorter side 384 (longer side at
# most 1333), a 384 x 384 crop, horizontal flip, SSD colour augmentation.
crop_size = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True),
    dict(type='Resize', scale=(1333, 384), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                          'flip_direction')),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))

default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=2,
                                     save_best='mIoU', rule='greater'),
                     visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
