# Training-free segmentation on the synthetic world with the tiny FG-CLIP 2 pretrained on the
# 10,000-image world (configs/pretrain/fgclip2-stage{1,2}_fgclip2-tiny_synthetic-10k.py) and class
# prompts in the form of the world's captions (configs/_base_/datasets/synthetic-prompts.py), as the
# 10k detector config. `model.dense_mode` picks the dense features (official head or a ClearCLIP /
# SCLIP / NACLIP surgery, fgclip2_det/openvocab/dense_surgery.py); docs/segmentation_training_free.md
# compares them:
#   python tools/test.py configs/ovseg/training-free_fgclip2-tiny-10k_synthetic.py --cfg-options model.dense_mode=clearclip
_base_ = ['./training-free_fgclip2-tiny_synthetic.py', '../_base_/datasets/synthetic-prompts.py']

model = dict(backbone=dict(checkpoint='work_dirs/tiny-10k-stage2'),
             text_classifier=dict(templates_en=_base_.synthetic_templates_en))
