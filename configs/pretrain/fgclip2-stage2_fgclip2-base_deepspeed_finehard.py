# Stage 2 with DeepSpeed ZeRO-2 (the official launcher uses scripts/zero2.json) through MMEngine's
# FlexibleRunner. DeepSpeed is not installable in this project's CI machines, so this config is
# documentation: `pip install deepspeed` on a GPU machine, then
#   torchrun --nproc_per_node=8 tools/train.py configs/pretrain/fgclip2-stage2_fgclip2-base_deepspeed_finehard.py --launcher pytorch
_base_ = ['./fgclip2-stage2_fgclip2-base_finehard.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2, allgather_partitions=True, reduce_scatter=True, overlap_comm=True,
                           contiguous_gradients=True, allgather_bucket_size=int(5e8),
                           reduce_bucket_size=int(5e8)),
    bf16=dict(enabled=True),
    gradient_clipping=1.0,
    train_micro_batch_size_per_gpu=512)
model = dict(amp_dtype=None)  # DeepSpeed's bf16 instead of autocast
optim_wrapper = dict(type='DeepSpeedOptimWrapper', _delete_=True,
                     optimizer=dict(type='AdamW', lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.001))
model_wrapper_cfg = None
