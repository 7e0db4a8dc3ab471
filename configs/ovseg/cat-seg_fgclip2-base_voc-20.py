# Zero-shot evaluation on Pascal VOC 2012 val without background (labels 0..19, background = 255), with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_voc-20.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

test_dataloader = dict(
    dataset=dict(
        type='VOC20SegDataset',
        data_root='data/VOCdevkit/VOC2012/',
        data_prefix=dict(img_path='JPEGImages/', seg_map_path='annotations_detectron2/val/'),
        test_mode=True))
val_dataloader = test_dataloader
