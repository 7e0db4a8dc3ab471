# FG-CLIP 2 stage 2's optimiser and schedule (the released official scripts/train/stage2_fgclip2.sh),
# which stage 1 reuses (its hyper-parameters are not public): 6 epochs, cosine with 3% warm-up;
# AdamW (0.9, 0.98), eps 1e-6, lr 1e-6, wd 0.001 with no decay on biases and norms (official
# SH2:L44-48, LTR:L419-420; docs/official_code.md).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.001),
    paramwise_cfg=dict(
        bias_decay_mult=0.0, norm_decay_mult=0.0,
        custom_keys={
            'logit_bias': dict(decay_mult=0.0),
            # the official optimiser (HF Trainer) exempts every parameter whose name contains "bias";
            # mmengine's bias_decay_mult covers only those named `bias`, not the MAP heads' in_proj_bias
            'in_proj_bias': dict(decay_mult=0.0),
            # the official --text_model_lr knob: a separate learning rate for the new heads
            'fgclip.dense_feature_head': dict(lr_mult=1.0),
            'fgclip.boxtext_head': dict(lr_mult=1.0),
            'fgclip.longtext_head': dict(lr_mult=1.0),
        }))

max_epochs = 6
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
param_scheduler = [  # cosine with 3% warmup
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=0.03 * max_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0.03 * max_epochs, end=max_epochs, T_max=0.97 * max_epochs,
         eta_min=0.0, convert_to_iter_based=True),
]
