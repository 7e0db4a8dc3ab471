# FG-OVD (official fgclip2/eval/fgovd_bbox_roi.py, docs/official_code.md): four jsonl files (hard /
# medium / easy / trivial), one item = one box of a COCO val2017 image + its positive and negative
# captions. The metric reports each difficulty.
data_root = 'data/'

test_pipeline = [
    dict(type='LoadFGCLIP2Image', exif_orientation=False),  # as the official eval
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='NaFlexResize', max_num_patches=None),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'naflex_budget',
                    'box_captions', 'test_type')),
]


fgovd_file = dict(type='FGOVDDataset', data_root=data_root, data_prefix=dict(img='coco/'), test_mode=True,
                  pipeline=test_pipeline)  # + ann_file; test_type comes from the official file name

test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(fgovd_file, ann_file='fgovd/h_attributes_llava.jsonl'),  # hard
            dict(fgovd_file, ann_file='fgovd/m_attributes_llava.jsonl'),  # medium
            dict(fgovd_file, ann_file='fgovd/e_attributes_llava.jsonl'),  # easy
            dict(fgovd_file, ann_file='fgovd/shuffle_negatives_llava.jsonl'),  # trivial
        ]))
val_dataloader = test_dataloader

test_evaluator = dict(type='FGOVDMetric')
val_evaluator = test_evaluator
