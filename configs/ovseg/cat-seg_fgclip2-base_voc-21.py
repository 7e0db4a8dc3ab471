# Zero-shot evaluation on Pascal VOC 2012 val with background (label 0 = background), with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_voc-21.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

test_dataloader = dict(
    dataset=dict(
        type='VOC21SegDataset',
        data_root='data/VOCdevkit/VOC2012/',
        data_prefix=dict(img_path='JPEGImages/', seg_map_path='SegmentationClass/'),
        test_mode=True))
val_dataloader = test_dataloader
