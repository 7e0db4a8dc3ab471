# BoxClass over the synthetic world's 14 kinds with prompts in the form of its captions
# (configs/_base_/datasets/synthetic-prompts.py) instead of the 80 photo templates:
#   python tools/test.py configs/boxclass/boxclass_fgclip2-tiny_synthetic-prompts_synthetic.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/tiny-10k-stage2
_base_ = ['./boxclass_fgclip2-tiny_synthetic.py', '../_base_/datasets/synthetic-prompts.py']

model = dict(text_classifier=dict(templates_en=_base_.synthetic_templates_en))
