# F-ViT-style OV-LVIS detector (mask head) on frozen FG-CLIP 2 base: 866 base classes boxed, the 337
# rare classes scored through FG-CLIP 2. F-ViT B/16 recipe (CLIPSelf
# F-ViT/configs/ov_lvis/fvit_vitb16_upsample_fpn_bs64_4x_ovlvis_eva_original.py): 1024 px, 48 epochs at
# batch 64, background loss weight 0.9, ensemble alpha 0.1 / beta 0.6 / T 50, R-CNN assigner with low-quality
# matches, test score_thr 1e-4 / NMS 0.5 / 300 detections; headline mask APr.
#   bash tools/dist_train.sh configs/ovd/fvit_fgclip2-base_ov-lvis.py 8
_base_ = ['../_base_/models/fvit_fgclip2-base.py', '../_base_/datasets/ov-lvis.py',
          '../_base_/schedules/fvit_48e.py', '../_base_/default_runtime.py']

fpn_channels = 256
model = dict(
    text_classifier=dict(name_style='underscore_to_space'),
    roi_head=dict(
        bbox_head=dict(num_classes=1203, background_weight=0.9),
        ensemble=dict(alpha=0.1, beta=0.6, temperature=50.0),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=0),
            out_channels=fpn_channels,
            featmap_strides=[4, 8, 16, 32]),
        # Class-agnostic: rare classes have no masks to learn a class-specific branch from.
        mask_head=dict(type='FCNMaskHead', num_convs=4, in_channels=fpn_channels, conv_out_channels=fpn_channels,
                       num_classes=1203, class_agnostic=True,
                       loss_mask=dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0))),
    train_cfg=dict(rcnn=dict(assigner=dict(match_low_quality=True))),
    test_cfg=dict(rcnn=dict(score_thr=0.0001, nms=dict(type='nms', iou_threshold=0.5),
                            max_per_img=300)))   # LVISEval keeps 300 per image

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='lvis/segm_APr',
                                    rule='greater'))   # F-ViT: every epoch, one kept (resume loses at most one)
