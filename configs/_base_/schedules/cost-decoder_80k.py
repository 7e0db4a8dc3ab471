# CAT-Seg's schedule (docs/official_code.md): 80k iterations at batch 4 (x 4 GPUs), AdamW lr 2e-4,
# weight decay 1e-4, bf16 autocast, gradient clipping at 1.0; 1,500-iteration linear warm-up, then
# poly decay; validation every 8k iterations.
max_iters = 80000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=1500, end=max_iters),
]
