# Fine-grained box classification on the synthetic world's val split: 168 classes, colour x kind
# ("red circle"), the region-level counterpart of FG-OVD. Classes come from the file's categories.
#   python tools/test.py configs/boxclass/boxclass_fgclip2-tiny_synthetic-fine.py \
#       --cfg-options model.backbone.checkpoint=work_dirs/tiny-stage2
_base_ = ['./boxclass_fgclip2-tiny_synthetic.py']

test_dataloader = dict(dataset=dict(ann_file='boxclass/fine_val.json', metainfo=None))
val_dataloader = test_dataloader
