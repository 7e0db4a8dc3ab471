# The 10k training-free set-up without the background class, as VOC-20 and Pascal Context-59 leave
# theirs out: background pixels are ignored (LoadAnnotations reduce_zero_label: 0 -> 255, kind k -> k-1)
# and the softmax runs over the 14 kinds only, so the score measures how well the dense features
# tell the kinds apart where there is a kind, whatever they do on the background. Used by
# docs/segmentation_training_free.md to compare the dense_mode variants:
#   python tools/test.py configs/ovseg/training-free_fgclip2-tiny-10k_synthetic-14.py --cfg-options model.dense_mode=clearclip
_base_ = ['./training-free_fgclip2-tiny-10k_synthetic.py']

metainfo = dict(
    classes=('circle', 'square', 'triangle', 'star', 'heart', 'hexagon', 'diamond', 'cross', 'crescent', 'ring',
             'arrow', 'pentagon', 'ellipse', 'trapezoid'),
    novel_classes=('star', 'heart', 'crescent', 'arrow'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 320), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_label=False, with_seg=True, reduce_zero_label=True),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
model = dict(background_threshold=None)
val_dataloader = dict(dataset=dict(metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
