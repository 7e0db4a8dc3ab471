# FG-CLIP 2 stage 2 (the released official scripts/train/stage2_fgclip2.sh): global sigmoid loss on
# long + short captions, region-text InfoNCE, TIC, hard negatives (L_FGT, L_hc) and CMR.
# Paths are placeholders: point them at your FineHARD copy and at a SigLIP 2 NaFlex or stage-1
# FG-CLIP 2 checkpoint (a SigLIP 2 folder is converted on the fly, like the official --from_siglip2).
_base_ = ['../_base_/default_runtime.py']

init_checkpoint = 'checkpoints/siglip2-base-patch16-naflex'
data_root = 'data/finehard/'
num_negatives = 10

model = dict(
    type='FGCLIP2Pretrainer',
    checkpoint=init_checkpoint,
    stage=2,
    sigmoid_mode='reduce',          # official "reduce"; "gather" is equivalent
    copy_dense_head=False,          # True = the internal script's MAP-head copy at every start
    amp_dtype='bfloat16',           # official: bf16
    grad_checkpointing=True,
    data_preprocessor=dict(type='BaseDataPreprocessor'))

train_dataloader = dict(
    batch_size=512,                 # per GPU; 8 GPUs = 4096 (official)
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    # --cn_and_en_2_train: every global batch (all ranks together) holds one language
    batch_sampler=dict(type='GlobalLanguageBatchSampler', drop_last=True),
    collate_fn=dict(type='naflex_pretrain_collate', tokenizer=init_checkpoint, max_num_patches=1024,
                    num_negatives=num_negatives),
    dataset=dict(
        type='FineHARDDataset',
        data_root=data_root,
        ann_file='jsonfiles/',
        image_root='',
        zh_ann_file='cn_jsonfiles/',
        zh_image_root='cn_images/',
        with_regions=True,
        max_regions=4,
        num_negatives=num_negatives,
        cn_regions=True,            # official code drops Chinese region supervision; the paper uses it
        region_caption='random'))

# AdamW (0.9, 0.98), eps 1e-6, lr 1e-6, wd 0.001 with no decay on biases and norms (official
# SH2:L44-48, LTR:L419-420; docs/official_code.md).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-6, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.001),
    paramwise_cfg=dict(
        bias_decay_mult=0.0, norm_decay_mult=0.0,
        custom_keys={
            'logit_bias': dict(decay_mult=0.0),
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
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# saves the sampler's layout in checkpoints; --resume continues mid-epoch with the unseen samples
custom_hooks = [dict(type='ResumeLanguageBatchesHook')]
# Steps without regions on one rank leave region parameters without gradients there.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
