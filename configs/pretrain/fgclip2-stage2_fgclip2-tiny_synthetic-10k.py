# Stage 2 of the tiny FG-CLIP 2 on the 10,000-image synthetic world, from its 10k stage-1 model
# (fgclip2-stage1_fgclip2-tiny_synthetic-10k.py): 4,000 iterations (4 epochs of its 16,000 English and
# Chinese items), about 40 min on 2 CPU cores.
#   python tools/train.py configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic-10k.py
#   python tools/export_checkpoint.py work_dirs/fgclip2-stage2_fgclip2-tiny_synthetic-10k/iter_4000.pth \
#       work_dirs/tiny-10k-stage2
_base_ = ['./fgclip2-stage2_fgclip2-tiny_synthetic.py']

init_checkpoint = 'work_dirs/tiny-10k-stage1'
model = dict(checkpoint=init_checkpoint)
train_dataloader = dict(collate_fn=dict(tokenizer=init_checkpoint),
                        dataset=dict(data_root='work_dirs/pretrain_world/'))
max_iters = 4000
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, T_max=max_iters - 30, eta_min=1e-5),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=1000, max_keep_ckpts=4))
