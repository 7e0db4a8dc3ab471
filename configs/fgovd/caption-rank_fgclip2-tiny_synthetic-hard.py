# FG-OVD hard only (1 attribute changed) on the synthetic world: the quick learning check of the
# pretraining stages (README "Learning evidence"). Batched: an item's scores do not depend on its
# batch-mates.
_base_ = ['./caption-rank_fgclip2-tiny_synthetic.py']

test_dataloader = dict(
    batch_size=16,
    dataset=dict(_delete_=True, type='FGOVDDataset', data_root=_base_.synthetic_world, data_prefix=dict(img=''),
                 test_mode=True, pipeline=_base_.test_pipeline, ann_file='fgovd/hard.jsonl',
                 test_type='1_attributes'))
val_dataloader = test_dataloader
