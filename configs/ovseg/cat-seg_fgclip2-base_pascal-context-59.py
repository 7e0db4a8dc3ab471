# Zero-shot evaluation on Pascal Context val, 59 classes (labels 0..58, 255 = the rest), with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_pascal-context-59.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

test_dataloader = dict(
    dataset=dict(
        type='PascalContext59SegDataset',
        data_root='data/VOCdevkit/VOC2010/',
        data_prefix=dict(img_path='JPEGImages/', seg_map_path='annotations_detectron2/pc59_val/'),
        test_mode=True))
val_dataloader = test_dataloader
