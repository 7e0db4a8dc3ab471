# BoxClass-CN (official fgclip2/eval/in1k/laion_cn_box_cls_ddp.py, docs/official_code.md): COCO-style
# file with 566 Chinese categories (index = category_id - 1).
# Names are used as is: no template, no lower-casing (the model config sets language='zh').
_base_ = './boxclass_coco.py'

data_root = 'data/boxclass_cn/'
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='valid_category_data_total_zh.json',
        data_prefix=dict(img='images/')))
val_dataloader = test_dataloader
