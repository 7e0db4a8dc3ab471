# FG-CLIP 2 stage 2 (the released official scripts/train/stage2_fgclip2.sh): global sigmoid loss on
# long + short captions, region-text InfoNCE, TIC, hard negatives (L_FGT, L_hc) and CMR.
# Paths are placeholders: point them at your FineHARD copy and at a SigLIP 2 NaFlex or stage-1
# FG-CLIP 2 checkpoint (a SigLIP 2 folder is converted on the fly, like the official --from_siglip2).
_base_ = ['../_base_/default_runtime.py', '../_base_/schedules/fgclip2-stage2_6e.py']

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

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
# saves the sampler's layout in checkpoints; --resume continues mid-epoch with the unseen samples
custom_hooks = [dict(type='ResumeLanguageBatchesHook')]
# Steps without regions on one rank leave region parameters without gradients there.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
