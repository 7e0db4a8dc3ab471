# COCO val2017 box classification, the official protocol (fgclip2/eval/coco_box_ddp.py, see
# docs/official_code.md):
# * every annotation is a sample box, iscrowd ones included (keep_crowd=True = official);
# * classes: the 80 categories in id order;
# * image: the full image, FG-CLIP 2 NaFlex resize with the dynamic token budget (<= 1024 tokens,
#   PIL bilinear on uint8), normalised to [-1, 1] by the data preprocessor;
# * boxes are scaled with the image as (x / W) * W' in float64 (not clipped), i.e. mapped to the patch
#   grid by x / 16 exactly as the official (x / W) * w; zero-area boxes get uniform scores;
# * images without annotations are skipped; metric = correct boxes / boxes.
dataset_type = 'BoxClassDataset'
data_root = 'data/coco/'

test_pipeline = [
    # PIL decode -> RGB uint8 as FGCLIP2ImageProcessor; EXIF orientation not applied, as the
    # official eval (Image.open(path).convert('RGB')): the annotations refer to the stored layout
    dict(type='LoadFGCLIP2Image', exif_orientation=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='NaFlexResize', max_num_patches=None),  # None = official dynamic budget
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'naflex_budget')),
]

test_dataloader = dict(
    batch_size=1,  # safe to raise: an image's scores do not depend on its batch-mates (tested)
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        keep_crowd=True,
        test_mode=True,
        pipeline=test_pipeline))
val_dataloader = test_dataloader

test_evaluator = dict(type='BoxClassMetric')
val_evaluator = test_evaluator
