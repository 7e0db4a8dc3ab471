# LVIS v1 val box classification (official fgclip2/eval/in1k/lvis_box_cls_ddp.py): as COCO, with the
# 1203 LVIS categories (index = category_id - 1), names with '_' -> ' ', images located through
# coco_url (train2017/ or val2017/).
_base_ = './boxclass_coco.py'

data_root = 'data/lvis_v1/'
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        class_name_style='underscore_to_space',
        img_path_from='coco_url'))
val_dataloader = test_dataloader
