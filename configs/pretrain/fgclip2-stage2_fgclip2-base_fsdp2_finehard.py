# Stage 2 with PyTorch FSDP2 (torch.distributed.fsdp.fully_shard) through MMEngine's FlexibleRunner:
# every encoder block of both towers is sharded over the ranks, the rest sits in the root unit; bf16
# parameters with fp32 gradient reduction on GPUs (mixed_precision='auto'; fp32 on CPU). Checkpoints
# are full state dicts written by rank 0, so tools/export_checkpoint.py works on them unchanged.
#   GPUs: torchrun --nproc_per_node=8 tools/train.py configs/pretrain/fgclip2-stage2_fgclip2-base_fsdp2_finehard.py --launcher pytorch
#   CPU:  tools/dist_train.sh configs/pretrain/fgclip2-stage2_fgclip2-base_fsdp2_finehard.py 2   (gloo)
_base_ = ['./fgclip2-stage2_fgclip2-base_finehard.py']

runner_type = 'FlexibleRunner'
strategy = dict(type='FSDP2Strategy', mixed_precision='auto')
model = dict(amp_dtype=None)    # FSDP2's mixed-precision policy instead of autocast
model_wrapper_cfg = None        # the strategy shards the model in place; no DDP wrapper
