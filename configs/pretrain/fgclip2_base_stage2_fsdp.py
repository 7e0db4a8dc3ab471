# Stage 2 with PyTorch FSDP through MMEngine's FlexibleRunner (multi-GPU; FSDP refuses CPU-only
# machines, so this is exercised only where GPUs are available):
#   torchrun --nproc_per_node=8 tools/train.py configs/pretrain/fgclip2_base_stage2_fsdp.py --launcher pytorch
_base_ = ['./fgclip2_base_stage2.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
                              min_num_params=int(1e7)),
        use_orig_params=True),  # keeps per-parameter lr/decay groups (paramwise_cfg) working
    mixed_precision=dict(param_dtype='bfloat16', reduce_dtype='float32', buffer_dtype='float32'))
model = dict(amp_dtype=None)    # FSDP's mixed precision instead of autocast
model_wrapper_cfg = None
