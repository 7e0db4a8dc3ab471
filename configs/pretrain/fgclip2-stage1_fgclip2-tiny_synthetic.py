# Tiny FG-CLIP 2 stage 1 on the synthetic world, from random weights, on CPU. Prepare:
#   python tools/make_synthetic_world.py work_dirs/synthetic_world --images 2000 --seed 0
#   python tools/make_tiny_checkpoint.py work_dirs/tiny-fgclip2 --seed 0
#   python tools/train.py configs/pretrain/fgclip2-stage1_fgclip2-tiny_synthetic.py
#   python tools/export_checkpoint.py work_dirs/fgclip2-stage1_fgclip2-tiny_synthetic/iter_500.pth work_dirs/tiny-stage1 \
#       --copy-region-heads
_base_ = ['./fgclip2-stage1_fgclip2-base_finehard.py']

init_checkpoint = 'work_dirs/tiny-fgclip2'
model = dict(checkpoint=init_checkpoint, amp_dtype=None, grad_checkpointing=False)
# num_workers=0: on 2 cores a loader process competes with the two compute threads (measured: stage-1
# iteration 0.38 s with 1 worker, 0.31 s with none; stage 2 0.68 s vs 0.66 s).
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    collate_fn=dict(tokenizer=init_checkpoint, max_num_patches=256),
    dataset=dict(data_root='work_dirs/synthetic_world/', ann_file='pretrain/en.json', image_root='',
                 zh_ann_file='pretrain/zh.json', zh_image_root=''))
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=1e-4))  # from scratch: far above 1e-6
max_iters = 500
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, T_max=max_iters - 30, eta_min=1e-5),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters // 2, max_keep_ckpts=2))
randomness = dict(seed=0)
