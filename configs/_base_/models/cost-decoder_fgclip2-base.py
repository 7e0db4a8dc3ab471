# Open-vocabulary semantic segmentation on frozen FG-CLIP 2 base (fgclip2_det/seg): the dense map's
# cost volume against the class text embeddings, decoded by a CAT-Seg-style cost-aggregation decoder
# (spatial + class aggregation, x4 upsampling guided by blocks 8 and 4). decoder=None gives the
# training-free baseline (softmax(100 * cos) per patch).
fgclip2_checkpoint = 'checkpoints/fg-clip2-base'

model = dict(
    type='FGCLIP2Segmentor',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_size_divisor=16,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(type='FGCLIP2ViT', checkpoint=fgclip2_checkpoint, out_indices=[7, 3], frozen=True),
    decoder=dict(channels=128, guidance_channels=64, num_spatial=2, num_class_layers=1, num_heads=4),
    text_classifier=dict(language='auto', templates_en='default', cache_dir=None, kind='box'),
    temperature=100.0,
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(426, 426)),
    ignore_index=255)

custom_hooks = [dict(type='DatasetVocabularyHook')]
