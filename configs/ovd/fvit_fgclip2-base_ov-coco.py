# F-ViT-style OV-COCO detector on frozen FG-CLIP 2 base (48 base classes boxed, 17 novel scored
# through FG-CLIP 2). F-ViT's recipe: AdamW lr 1e-4, wd 0.1, 3 epochs at batch 64 (8 GPUs x 8),
# background loss weight 0.6, ensemble alpha 0.1 / beta 0.8.
#   python tools/train.py configs/ovd/fvit_fgclip2-base_ov-coco.py
#   bash tools/dist_train.sh configs/ovd/fvit_fgclip2-base_ov-coco.py 8
_base_ = ['../_base_/models/fvit_fgclip2-base.py', '../_base_/datasets/ov-coco.py',
          '../_base_/schedules/fvit_3e.py', '../_base_/default_runtime.py']

model = dict(roi_head=dict(bbox_head=dict(num_classes=65, background_weight=0.6),
                           ensemble=dict(alpha=0.1, beta=0.8)))

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, save_best='coco/novel_ap50', rule='greater'))
