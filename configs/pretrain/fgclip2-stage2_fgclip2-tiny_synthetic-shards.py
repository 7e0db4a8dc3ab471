# Tiny FG-CLIP 2 stage 2 on the synthetic world, read from indexed WebDataset-style tar shards
# (FineHARDShardDataset: memory-mapped index, shard files read by seeking; the web-scale layout)
# instead of the JSON annotations. Same samples in the same order as fgclip2-stage2_fgclip2-tiny_synthetic.py:
#   python tools/make_synthetic_world.py work_dirs/synthetic_world --images 2000 --seed 0
#   python tools/make_pretrain_shards.py work_dirs/synthetic_world/shards --data-root work_dirs/synthetic_world \
#       --ann-file pretrain/en.json --image-root '' --zh-ann-file pretrain/zh.json --zh-image-root ''
#   python tools/train.py configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic-shards.py
_base_ = ['./fgclip2-stage2_fgclip2-tiny_synthetic.py']

num_negatives = _base_.num_negatives
train_dataloader = dict(
    dataset=dict(_delete_=True, type='FineHARDShardDataset', shard_root='work_dirs/synthetic_world/shards',
                 with_regions=True, max_regions=4, num_negatives=num_negatives, cn_regions=True,
                 region_caption='random'))
