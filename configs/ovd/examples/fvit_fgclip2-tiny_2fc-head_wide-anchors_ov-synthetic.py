# Example: a new detector by inheritance. Starts from the synthetic-world F-ViT and swaps two parts:
# * the RoI box head: Faster R-CNN's lighter "Shared2FC" shape (no convs, two FC layers), still
#   classifying by cosine against FG-CLIP 2 text embeddings;
# * the RPN anchors: five aspect ratios instead of three, for elongated objects.
# Everything else (frozen FG-CLIP 2, pyramid, ensemble, data, schedule) is inherited.
#   python tools/train.py configs/ovd/examples/fvit_fgclip2-tiny_2fc-head_wide-anchors_ov-synthetic.py
#   python tools/test.py configs/ovd/examples/fvit_fgclip2-tiny_2fc-head_wide-anchors_ov-synthetic.py \
#       work_dirs/fvit_fgclip2-tiny_2fc-head_wide-anchors_ov-synthetic/iter_1000.pth
_base_ = ['../fvit_fgclip2-tiny_ov-synthetic.py']

model = dict(
    rpn_head=dict(anchor_generator=dict(ratios=[0.25, 0.5, 1.0, 2.0, 4.0])),
    roi_head=dict(bbox_head=dict(num_shared_convs=0, num_shared_fcs=2, fc_out_channels=256)))
