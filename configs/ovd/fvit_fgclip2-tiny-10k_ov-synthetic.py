# The synthetic-world detector on the tiny FG-CLIP 2 pretrained on the 10,000-image world
# (configs/pretrain/fgclip2-stage{1,2}_fgclip2-tiny_synthetic-10k.py), which has learnt shapes, with class
# prompts in the form of the world's captions (configs/_base_/datasets/synthetic-prompts.py).
# The README's OVD learning evidence comes from this config:
#   python tools/train.py configs/ovd/fvit_fgclip2-tiny-10k_ov-synthetic.py
#   python tools/test.py configs/ovd/fvit_fgclip2-tiny-10k_ov-synthetic.py \
#       work_dirs/fvit_fgclip2-tiny-10k_ov-synthetic/iter_1000.pth
_base_ = ['./fvit_fgclip2-tiny_ov-synthetic.py', '../_base_/datasets/synthetic-prompts.py']

fgclip2_checkpoint = 'work_dirs/tiny-10k-stage2'
model = dict(backbone=dict(checkpoint=fgclip2_checkpoint),
             text_classifier=dict(templates_en=_base_.synthetic_templates_en))
