# Zero-shot evaluation on ADE20K-150 val (ADEChallengeData2016, labels 0..149 with 255 = other, detectron2's prepare_ade20k_sem_seg.py), with CAT-Seg (FGCLIP2CATSeg) trained on COCO-Stuff 171.
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_ade20k-150.py CHECKPOINT.pth
_base_ = ['./cat-seg_fgclip2-base_coco-stuff-171.py']

test_dataloader = dict(
    dataset=dict(
        type='ADE20KSegDataset',
        data_root='data/ADEChallengeData2016/',
        data_prefix=dict(img_path='images/validation/', seg_map_path='annotations_detectron2/validation/'),
        test_mode=True))
val_dataloader = test_dataloader
