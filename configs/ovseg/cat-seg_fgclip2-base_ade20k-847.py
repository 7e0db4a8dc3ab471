# Zero-shot evaluation on ADE20K-847 val (ADE20K full, labels 0..846; CAT-Seg's prepare_ade20k_full.py); class names from the benchmark's name file, one per line in label order, with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_ade20k-847.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

# Its 16-bit label maps mark unlabelled pixels 65535. Each view keeps its 256 classes of highest cost
# (CAT-Seg's pad_len), which run through the per-class stages in chunks of 64 (the same numbers,
# less memory; tools/benchmark.py cat_seg).
model = dict(ignore_index=65535, aggregator=dict(class_chunk=64))
test_dataloader = dict(
    dataset=dict(
        type='OVSegDataset',
        data_root='data/ADE20K_2021_17_01/',
        class_names_file='ade20k_847_classes.txt',
        img_suffix='.jpg',
        seg_map_suffix='.tif',
        data_prefix=dict(img_path='images_detectron2/validation/', seg_map_path='annotations_detectron2/validation/'),
        test_mode=True))
val_dataloader = test_dataloader
