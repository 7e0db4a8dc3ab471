# CAT-Seg's schedule (cvlab-kaist/CAT-Seg configs/config.yaml + vitb_384.yaml, train_net.py
# build_optimizer): 80k iterations at 4 images per iteration in total, AdamW lr 2e-4, weight decay
# 1e-4 (0 on norm layers and embeddings), cosine decay to 0 without warm-up, full-model gradient
# clipping at L2 norm 0.01, CLIP parameters at 0.01x the lr (here: both FG-CLIP 2 towers), float32.
max_iters = 80000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    # mmengine matches the longest key first: position tables get the towers' lr and no decay.
    paramwise_cfg=dict(norm_decay_mult=0.0,
                       custom_keys={'backbone': dict(lr_mult=0.01), 'text_tower': dict(lr_mult=0.01),
                                    'position_embedding': dict(lr_mult=0.01, decay_mult=0.0)}))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=0.0, by_epoch=False, begin=0,
                        end=max_iters)]
# 4 images per iteration in total: batch_size=4 on one GPU, or 1 per GPU on 4.
auto_scale_lr = dict(enable=False, base_batch_size=4)
