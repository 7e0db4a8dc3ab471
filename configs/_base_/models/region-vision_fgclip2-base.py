# The vision half shared by FG-CLIP 2 region models (box classifier, FG-OVD caption ranker): the
# data preprocessor and the frozen backbone, whose weights load from `checkpoint` when the model is
# built, so tools/test.py needs no checkpoint file.
fgclip2_checkpoint = 'checkpoints/fg-clip2-base'

model = dict(
    # Images arrive as RGB uint8 at the NaFlex size (see _base_/datasets/boxclass_coco.py);
    # (x - 127.5) / 127.5 is FG-CLIP 2's normalisation to [-1, 1].
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=False,
        pad_size_divisor=16),
    backbone=dict(
        type='FGCLIP2ViT',
        checkpoint=fgclip2_checkpoint,
        out_indices=[],  # only the dense map is needed
        frozen=True))
