# The tiny synthetic stage 2 (fgclip2-stage2_fgclip2-tiny_synthetic.py) sharded with FSDP2 over CPU processes
# (gloo; fp32 on CPU), e.g. two:
#   tools/dist_train.sh configs/pretrain/fgclip2-stage2_fgclip2-tiny_fsdp2_synthetic.py 2
#   python tools/export_checkpoint.py work_dirs/fgclip2-stage2_fgclip2-tiny_fsdp2_synthetic/iter_400.pth \
#       work_dirs/tiny-stage2-fsdp2
_base_ = ['./fgclip2-stage2_fgclip2-tiny_synthetic.py']

runner_type = 'FlexibleRunner'
strategy = dict(type='FSDP2Strategy', mixed_precision='auto')
model = dict(amp_dtype=None)
model_wrapper_cfg = None
