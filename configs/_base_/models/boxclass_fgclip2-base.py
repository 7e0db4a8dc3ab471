# FG-CLIP 2 box classifier, as the official box evaluations (fgclip2/eval/coco_box_ddp.py, LVIS and
# BoxClass-CN in fgclip2/eval/in1k/): encoder once per image, every GT box pooled from the
# dense map (RoIAlign 1x1, aligned), softmax(100 * cos) against the class embeddings.
_base_ = ['./region-vision_fgclip2-base.py']

model = dict(
    type='FGCLIP2BoxClassifier',
    # TextClassifier arguments; the checkpoint defaults to the backbone's. English names get the
    # 80 official templates, lower-cased; Chinese names are used bare (language='auto').
    # cache_dir=None -> $FGCLIP2_DET_CACHE/text or ~/.cache/fgclip2_det/text. attention_mask='auto':
    # pad tokens are masked exactly when the checkpoint's tokenizer returns an attention mask, as the
    # official evals pass the tokenizer's whole output; True / False force it (training passes none;
    # README "Where this implementation decides").
    text_classifier=dict(language='auto', templates_en='default', cache_dir=None, attention_mask='auto'),
    temperature=100.0,
    topk=5)

# The vocabulary is the evaluated dataset's metainfo['classes'].
custom_hooks = [dict(type='DatasetVocabularyHook')]
