# F-ViT's OV-COCO schedule (CLIPSelf F-ViT/configs/ov_coco/fvit_vitb16_upsample_fpn_bs64_3e_ovcoco_eva_original.py):
# AdamW lr 1e-4, weight decay 0.1, gradient clipping at 1.0; 250-iteration linear warm-up (ratio
# 0.001), then 3 epochs at batch 64 (8 GPUs x 8) without decay (F-ViT's step=[100] is never reached);
# validation every epoch; the learning rate scales with the total batch against 64. Mixed precision
# on GPUs: bf16 autocast, as FG-CLIP 2 is trained and evaluated (F-ViT: fp16, loss scale 512).
max_epochs = 3
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[100], gamma=0.1),
]
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=1.0, norm_type=2))
auto_scale_lr = dict(enable=True, base_batch_size=64)
