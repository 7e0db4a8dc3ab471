# Box classification on the synthetic world's val split (14 kinds, 4 of them novel), with a tiny
# FG-CLIP 2 (e.g. the export of configs/pretrain/fgclip2-stage2_fgclip2-tiny_synthetic.py):
#   python tools/make_synthetic_world.py work_dirs/synthetic_world --images 2000 --seed 0
#   python tools/test.py configs/boxclass/boxclass_fgclip2-tiny_synthetic.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/tiny-stage2
_base_ = ['./boxclass_fgclip2-base_coco.py']

model = dict(backbone=dict(checkpoint='work_dirs/tiny-stage2'))
synthetic_world = 'work_dirs/synthetic_world/'
test_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(
        data_root=synthetic_world,
        ann_file='det/instances_val_all.json',
        data_prefix=dict(img='images/'),
        metainfo=dict(
            classes=('circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond', 'cross', 'crescent',
                     'ring', 'arrow', 'pentagon', 'ellipse', 'trapezoid'),
            base_classes=('circle', 'square', 'triangle', 'hexagon', 'diamond', 'cross', 'ring', 'pentagon',
                          'ellipse', 'trapezoid'),
            novel_classes=('star', 'heart', 'crescent', 'arrow'))))
val_dataloader = test_dataloader
