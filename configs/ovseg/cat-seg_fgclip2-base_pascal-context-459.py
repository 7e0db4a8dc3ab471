# Zero-shot evaluation on Pascal Context val, 459 classes (labels 0..458; CAT-Seg's prepare_pascal_context_459.py); names from the benchmark's name file, with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_pascal-context-459.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

# Its 16-bit label maps mark unlabelled pixels 65535. Each view keeps its 256 classes of highest cost
# (CAT-Seg's pad_len), which run through the per-class stages in chunks of 64 (the same numbers,
# less memory; tools/benchmark.py cat_seg).
model = dict(ignore_index=65535, aggregator=dict(class_chunk=64))
test_dataloader = dict(
    dataset=dict(
        type='OVSegDataset',
        data_root='data/VOCdevkit/VOC2010/',
        class_names_file='pc459_classes.txt',
        seg_map_suffix='.tif',
        data_prefix=dict(img_path='JPEGImages/', seg_map_path='annotations_detectron2/pc459_val/'),
        test_mode=True))
val_dataloader = test_dataloader
