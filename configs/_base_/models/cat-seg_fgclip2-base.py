# CAT-Seg (Cho et al., CVPR 2024) on FG-CLIP 2 base with both towers fine-tuned, as CAT-Seg fine-tunes
# CLIP (fgclip2_det/seg/cat_seg). Values of cvlab-kaist/CAT-Seg configs/vitb_384.yaml (over
# configs/config.yaml): hidden 128, 2 aggregation layers, 4 heads, Swin window 12, class-attention
# pooling 2x2 in training and 1x1 at test (eval.sh), decoder (64, 32) guided by (256, 128) -> (32, 16),
# one prompt, QV fine-tuning, 384 x 384 views, sliding 384 windows (overlap 0.333) on 640 x 640 + a
# global view. Blocks 3 and 7 guide the decoder (CAT-Seg's B/16 taps); FG-CLIP 2's box-text embeddings
# and dense map make the cost volume.
fgclip2_checkpoint = 'checkpoints/fg-clip2-base'

model = dict(
    type='FGCLIP2CATSeg',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_size_divisor=16,
        pad_seg=True,
        seg_pad_value=255),
    backbone=dict(type='FGCLIP2ViT', checkpoint=fgclip2_checkpoint, out_indices=[3, 7]),
    aggregator=dict(
        hidden_dim=128,
        text_guidance_dim=128,
        appearance_guidance_dim=128,
        decoder_dims=(64, 32),
        decoder_guidance_dims=(256, 128),
        decoder_guidance_proj_dims=(32, 16),
        num_layers=2,
        num_heads=4,
        pooling_size=(2, 2),
        window_size=12,
        class_chunk=None,  # e.g. 64 for A-847 / PC-459 (same numbers, bounded memory)
        pad_len=256),  # CAT-Seg's Aggregator default: class attention over 256 tokens (padded / top-256)
    text_classifier=dict(kind='box', templates_en=['A photo of a {} in the scene'], language='auto',
                         cache_dir=None),
    finetune='attention',
    finetune_position_embeddings=False,  # as CAT-Seg's code trains (q/v weights only)
    clip_resolution=(384, 384),
    with_cp=False,
    ignore_as_negative=True,
    test_cfg=dict(mode='slide', crop_size=(384, 384), stride=(256, 256), resize=(640, 640), global_view=True,
                  pooling_size=(1, 1)),
    ignore_index=255)

custom_hooks = [dict(type='DatasetVocabularyHook')]
