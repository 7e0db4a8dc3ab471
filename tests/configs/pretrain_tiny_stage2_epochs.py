# The tiny synthetic stage 2 as the base config runs it (EpochBasedTrainLoop), for multi-process tests.
_base_ = ['../../configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic.py']

train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=2, T_max=2, eta_min=1e-5,
                        convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=1000, max_keep_ckpts=10))
