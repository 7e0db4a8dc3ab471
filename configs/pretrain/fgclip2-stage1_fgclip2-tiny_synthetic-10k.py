# Stage 1 of the tiny FG-CLIP 2 on a larger synthetic world (10,000 images, seed 2; 8,000 in its
# train split) for 1,500 iterations, about 8 min on 2 CPU cores. With the 2,000-image world the
# tiny model learns colours and patterns but not shapes; with five times the images and longer runs
# its stage 2 learns shapes too (README, "Learning evidence"). Prepare and run:
#   python tools/make_synthetic_world.py work_dirs/pretrain_world --images 10000 --seed 2
#   python tools/make_tiny_checkpoint.py work_dirs/tiny-fgclip2 --seed 0
#   python tools/train.py configs/pretrain/fgclip2-stage1_fgclip2-tiny_synthetic-10k.py
#   python tools/export_checkpoint.py work_dirs/fgclip2-stage1_fgclip2-tiny_synthetic-10k/iter_1500.pth \
#       work_dirs/tiny-10k-stage1 --copy-region-heads
_base_ = ['./fgclip2-stage1_fgclip2-tiny_synthetic.py']

train_dataloader = dict(dataset=dict(data_root='work_dirs/pretrain_world/'))
max_iters = 1500
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, T_max=max_iters - 30, eta_min=1e-5),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=max_iters // 2))
