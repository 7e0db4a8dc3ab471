# FG-CLIP 2 stage 1: global alignment only (sigmoid loss on long + short captions, EN + ZH).
# The paper's stage-1 hyper-parameters are not public (the official repository ships only the
# stage-2 script, scripts/train/stage2_fgclip2.sh); this reuses stage 2's optimiser and schedule.
# Data: image-text pairs in the FineHARD layout, no bbox_info needed.
_base_ = ['./fgclip2-stage2_fgclip2-base_finehard.py']

model = dict(stage=1)
train_dataloader = dict(dataset=dict(ann_file='stage1_jsonfiles/', zh_ann_file='stage1_cn_jsonfiles/',
                                     with_regions=False))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=False)
