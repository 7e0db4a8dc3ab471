# Train the cost-aggregation decoder on COCO-Stuff 171 over a frozen FG-CLIP 2 base; evaluate the
# same weights on any vocabulary with the cat-seg_fgclip2-base_<benchmark>.py configs.
# CAT-Seg's schedule (_base_/schedules/cost-decoder_80k.py): 80k iterations at batch 4 (x 4 GPUs).
#   bash tools/dist_train.sh configs/ovseg/cost-decoder_fgclip2-base_coco-stuff-171.py 4
#   python tools/test.py configs/ovseg/cat-seg_fgclip2-base_ade20k-150.py work_dirs/.../iter_80000.pth
_base_ = ['../_base_/models/cost-decoder_fgclip2-base.py', '../_base_/datasets/coco-stuff-171.py',
          '../_base_/schedules/cost-decoder_80k.py', '../_base_/default_runtime.py']

default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000, max_keep_ckpts=2,
                                     save_best='mIoU', rule='greater'),
                     visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
