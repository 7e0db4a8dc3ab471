# FG-OVD on the synthetic world (hard / medium / easy = 1 / 2 / 3 attributes changed; trivial =
# other objects' captions), with a tiny FG-CLIP 2:
#   python tools/test.py configs/fgovd/caption-rank_fgclip2-tiny_synthetic.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/tiny-stage2
_base_ = ['./caption-rank_fgclip2-base_fgovd.py']

model = dict(backbone=dict(checkpoint='work_dirs/tiny-stage2'))
synthetic_world = 'work_dirs/synthetic_world/'
language = ''  # '' = the English files, '_zh' = the Chinese ones
synthetic_file = dict(type='FGOVDDataset', data_root=synthetic_world, data_prefix=dict(img=''), test_mode=True,
                      pipeline=_base_.test_pipeline)
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[dict(synthetic_file, ann_file=f'fgovd/{level}{language}.jsonl', test_type=test_type)
                  for level, test_type in (('hard', '1_attributes'), ('medium', '2_attributes'),
                                           ('easy', '3_attributes'), ('trivial', 'shuffle_negatives'))]))
val_dataloader = test_dataloader
