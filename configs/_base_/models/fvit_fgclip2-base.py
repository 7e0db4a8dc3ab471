# F-ViT-style open-vocabulary detector on a frozen FG-CLIP 2 (fgclip2_det/det/ov_detector.py):
# FG-CLIP 2 block maps -> simple pyramid (one tap per level, as F-ViT) -> FPN -> RPN -> RoI head whose
# classifier is T * cos(projected RoI feature, FG-CLIP 2 text embedding); at test time the scores
# are ensembled with FG-CLIP 2's own region scores (alpha on base, beta on novel classes) by F-ViT's
# rule. Values follow F-ViT B/16 OV-COCO (CLIPSelf
# F-ViT/configs/ov_coco/fvit_vitb16_upsample_fpn_bs64_3e_ovcoco_eva_original.py); docs/recipes.md
# lists each value, F-ViT's, and why ours differs where it does.
# Vocabulary and base/novel split: from the dataset (DatasetVocabularyHook).
fgclip2_checkpoint = 'checkpoints/fg-clip2-base'
# Widths set to None follow the checkpoint's config.json when the detector is built (FG-CLIP 2 width:
# base 768, large 1024, so400m 1152; fgclip2_det/det/widths.py): another size changes only the checkpoint.
num_classes = 65       # the dataset's; the box head checks it against the vocabulary
fpn_channels = 256

model = dict(
    type='FGCLIP2FViT',
    # MMDetection loads images as BGR uint8; FG-CLIP 2 wants RGB (x - 127.5) / 127.5.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_mask=True,
        pad_size_divisor=32),
    backbone=dict(
        type='FGCLIP2ViT',
        checkpoint=fgclip2_checkpoint,
        out_indices=None,   # four taps at 1/3, 1/2, 2/3 and the end (F-ViT: 3, 5, 7, 11 for B/16)
        frozen=True),
    neck=dict(
        type='SequentialNeck',
        necks=[
            dict(type='SimplePyramid', in_channels=None, out_channels=fpn_channels,
                 in_index=[0, 1, 2, 3], scale_factors=(4.0, 2.0, 1.0, 0.5), extra_pool=False),
            dict(type='FPN', in_channels=[fpn_channels] * 4, out_channels=fpn_channels, num_outs=5),
        ]),
    # TextClassifier arguments (80 templates, box text head, on-disk cache); checkpoint = backbone's.
    text_classifier=dict(language='auto', templates_en='default', cache_dir=None, attention_mask='auto'),
    rpn_head=dict(
        type='RPNHead',
        in_channels=fpn_channels,
        feat_channels=fpn_channels,
        anchor_generator=dict(type='AnchorGenerator', scales=[8], ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0, .0, .0, .0], target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0),
        num_convs=2),
    roi_head=dict(
        type='FGCLIP2OVRoIHead',
        # F-ViT's ensemble: detector and FG-CLIP 2 (softmax(T * cos) over the classes and the
        # "background" text embedding) combined by p_det^(1-w) p_clip^w, w = alpha on base classes and
        # background, beta on novel ones, not renormalised. T = 75 as F-ViT on COCO (50 on LVIS): on the
        # synthetic world T = 100 (FG-CLIP 2's box protocol) ranked last of 50 / 75 / 100 (README,
        # docs/recipes.md). rule='fvlm' keeps the former F-VLM rule.
        ensemble=dict(alpha=0.1, beta=0.8, rule='fvit', calibration='softmax', temperature=75.0),
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=fpn_channels,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type='CosineBBoxHead',
            embed_dim=None,
            temperature=50.0,
            background='text',      # F-ViT: the fixed text embedding of "background" (learn_bg=False)
            background_weight=1.0,
            num_shared_convs=4,
            num_shared_fcs=2,
            in_channels=fpn_channels,
            conv_out_channels=fpn_channels,
            fc_out_channels=512,
            roi_feat_size=7,
            num_classes=num_classes,
            norm_cfg=dict(type='GN', num_groups=32),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                            target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=True,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3,
                          match_low_quality=True, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=256, pos_fraction=0.5, neg_pos_ub=-1,
                         add_gt_as_proposals=False),
            allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        rcnn=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                          match_low_quality=False, ignore_iof_thr=-1),
            sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                         add_gt_as_proposals=True),
            mask_size=28, pos_weight=-1, debug=False)),
    test_cfg=dict(
        rpn=dict(nms_pre=2000, max_per_img=1000, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0),
        # F-ViT: after the beta = 0.8 geometric mean novel scores are small; 0.05 would prune them
        rcnn=dict(score_thr=0.01, nms=dict(type='nms', iou_threshold=0.4), max_per_img=100,
                  mask_thr_binary=0.5)))

custom_hooks = [dict(type='DatasetVocabularyHook')]
