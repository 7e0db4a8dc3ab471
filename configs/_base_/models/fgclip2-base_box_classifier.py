# FG-CLIP 2 box classifier (spec §5.1-5.3): encoder once per image, every GT box pooled from the
# dense map (RoIAlign 1x1, aligned), softmax(100 * cos) against the class embeddings.
# The weights load from `checkpoint` when the model is built: tools/test.py needs no checkpoint file.
fgclip2_checkpoint = 'checkpoints/fg-clip2-base'

model = dict(
    type='FGCLIP2BoxClassifier',
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
        frozen=True),
    # TextClassifier arguments; the checkpoint defaults to the backbone's. English names get the
    # 80 official templates, lower-cased; Chinese names are used bare (language='auto').
    # cache_dir=None -> $FGCLIP2_DET_CACHE/text or ~/.cache/fgclip2_det/text. attention_mask: the
    # official evals pass the tokenizer's mask if the released tokenizer returns one (spec §8.10).
    text_classifier=dict(language='auto', templates_en='default', cache_dir=None, attention_mask=False),
    temperature=100.0,
    topk=5)

# The vocabulary is the evaluated dataset's metainfo['classes'].
custom_hooks = [dict(type='DatasetVocabularyHook')]
