"""FGCLIP2ViT: weights loaded in __init__, padding never changes features, freezing, taps."""
from __future__ import annotations

import pytest
import torch
from mmdet.registry import MODELS

from fgclip2_det.det import FGCLIP2ViT, default_out_indices
from det_helpers import in_mmdet_scope, mmdet_scope  # noqa: F401  (mmdet_scope: autouse fixture)


@pytest.fixture(scope="module")
def backbone(tiny_dir):
    with in_mmdet_scope():
        return MODELS.build(dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir), out_indices=[0, -1]))


def test_default_out_indices():
    assert default_out_indices(12) == (3, 5, 7, 11)
    assert default_out_indices(24) == (6, 10, 14, 23)  # F-ViT's ViT-L taps
    assert default_out_indices(27) == (8, 13, 17, 26)
    assert default_out_indices(2) == (0, 0, 0, 1)


def test_checkpoint_loads_in_init_and_survives_init_weights(tiny_dir, tiny_model):
    """A config-built model has the checkpoint's weights without init_weights(); the runner's
    init_weights() (training) must not re-randomise them, even from a parent module."""
    model = MODELS.build(dict(type="FGCLIP2BoxClassifier", backbone=dict(type="FGCLIP2ViT", checkpoint=str(tiny_dir))))
    expected = {k: v for k, v in tiny_model.state_dict().items()
                if k.startswith(("vision_model.", "dense_feature_head.", "logit_")) and not k.startswith("vision_model.head.")}
    got = {k[len("backbone.fgclip2."):]: v for k, v in model.state_dict().items() if k.startswith("backbone.fgclip2.")}
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    model.init_weights()
    assert all(torch.equal(model.backbone.fgclip2.state_dict()[k], expected[k]) for k in expected)
    assert not any(k.startswith("backbone.fgclip2.text_model") for k in model.state_dict())


def test_missing_checkpoint_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.*model\.backbone\.checkpoint"):
        FGCLIP2ViT(checkpoint=str(tmp_path / "nope"))


def test_bad_arguments(tiny_dir):
    with pytest.raises(ValueError, match="outside the encoder's 2 blocks"):
        FGCLIP2ViT(checkpoint=str(tiny_dir), out_indices=[2])
    with pytest.raises(ValueError, match="trainable_blocks"):
        FGCLIP2ViT(checkpoint=str(tiny_dir), trainable_blocks=3)
    with pytest.raises(ValueError, match="frozen=False"):
        FGCLIP2ViT(checkpoint=str(tiny_dir), frozen=False, trainable_blocks=1)
    with pytest.raises(ValueError, match="remove init_cfg"):
        FGCLIP2ViT(checkpoint=str(tiny_dir), init_cfg=dict(type="Pretrained", checkpoint="x.pth")).init_weights()


def test_padding_never_changes_features(backbone, tiny_model, make_images):
    """An image alone (padded to 32) == the same image in a padded batch with a bigger one, and
    == the plain model on the exact image; non-multiple-of-16 img_shape rounds up (crop 48 x 64)."""
    small, big = make_images([(48, 64), (80, 112)], seed=1)
    alone = torch.zeros(1, 3, 64, 64)
    alone[0, :, :48] = small
    batch = torch.zeros(2, 3, 96, 128)
    batch[0, :, :48, :64], batch[1, :, :80, :112] = small, big
    with torch.no_grad():
        a = backbone(alone, img_shapes=[(40, 50)])  # real 40 x 50 -> crop 48 x 64 (pixels 40..47 = small's)
        b = backbone(batch, img_shapes=[(40, 50), (80, 112)])
        ref = tiny_model.vision_features([small], out_indices=(0, 1), with_global=False)
    assert a.grids == [(3, 4)] and b.grids == [(3, 4), (5, 7)]
    assert b.dense.shape == (2, 64, 6, 8) and len(b) == 2 and b[0].shape == (2, 64, 6, 8)
    # Packed with a second image, the GEMMs see more rows and may block their float32 sums
    # differently (AVX-512 kernels do): equal up to float32 rounding of values ~10, not bit for bit.
    for got_a, got_b, want in zip([*a, a.dense], [*b, b.dense], [*ref.intermediates, ref.dense_maps]):
        torch.testing.assert_close(got_a[0, :, :3, :4], want[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(got_b[0, :, :3, :4], want[0], atol=1e-5, rtol=1e-5)
        assert got_b[0, :, 3:].abs().max() == 0 and got_b[0, :, :, 4:].abs().max() == 0
    assert torch.equal(b.image_dense_maps()[1], b.dense[1, :, :5, :7])


def test_without_img_shapes_and_small_padding(backbone, make_images):
    """No img_shapes: each padded tensor is one image. A batch smaller than the rounded size
    (pad_size_divisor=1) is zero-padded up to it, which equals DetDataPreprocessor's padding."""
    image = make_images([(40, 40)], seed=2)[0]
    padded = torch.zeros(1, 3, 48, 48)
    padded[0, :, :40, :40] = image
    with torch.no_grad():
        exact = backbone(image[None], img_shapes=[(40, 40)])
        full = backbone(padded)
    torch.testing.assert_close(exact.dense, full.dense, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="does not fit the batch"):
        backbone(image[None], img_shapes=[(41, 40)])
    with pytest.raises(ValueError, match="2 img_shapes for a batch of 1"):
        backbone(image[None], img_shapes=[(40, 40)] * 2)


def test_duplicate_out_indices_keep_their_order(tiny_dir, make_images):
    bb = FGCLIP2ViT(checkpoint=str(tiny_dir), out_indices=None, with_dense=False)  # tiny: (0, 0, 0, 1)
    with torch.no_grad():
        out = bb(make_images([(32, 32)])[0][None])
    assert len(out) == 4 and out.dense is None
    assert torch.equal(out[0], out[2]) and not torch.equal(out[0], out[3])


def test_frozen_backbone_gets_no_gradient_but_the_neck_does(tiny_dir, make_images):
    bb = FGCLIP2ViT(checkpoint=str(tiny_dir), out_indices=[1])
    neck = MODELS.build(dict(type="SimplePyramid", in_channels=64, out_channels=16))
    bb.train(), neck.train()
    assert not bb.fgclip2.training and not any(m.training for m in bb.fgclip2.modules())
    assert all(not p.requires_grad for p in bb.parameters())
    outs = neck(bb(make_images([(64, 64)])[0][None]))
    sum(o.square().mean() for o in outs).backward()
    assert all(p.grad is None for p in bb.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())


def test_trainable_blocks_and_unfrozen(tiny_dir, make_images):
    bb = FGCLIP2ViT(checkpoint=str(tiny_dir), out_indices=[1], trainable_blocks=1).train()
    layers = bb.fgclip2.vision_model.encoder.layers
    assert layers[1].training and not layers[0].training and not bb.fgclip2.dense_feature_head.training
    bb(make_images([(32, 48)])[0][None])[0].sum().backward()
    assert all(p.grad is not None for p in layers[1].parameters())
    assert all(p.grad is None for p in layers[0].parameters())
    full = FGCLIP2ViT(checkpoint=str(tiny_dir), frozen=False).train()
    assert full.fgclip2.training
    frozen_names = [n for n, p in full.named_parameters() if not p.requires_grad]
    assert frozen_names == ["fgclip2.dense_feature_head.probe"]  # unused: the dense head has no probe query


def test_checkpoint_with_other_frozen_weights_is_refused(tiny_dir, tmp_path):
    """Text embeddings come from model.backbone.checkpoint; a detector checkpoint whose frozen tower
    differs (trained on another FG-CLIP 2) must fail, naming the key, not silently mix two models."""
    from fgclip2_det.model.tiny import make_tiny_checkpoint

    other = FGCLIP2ViT(checkpoint=str(make_tiny_checkpoint(tmp_path / "other", seed=1, with_tokenizer=False)))
    bb = FGCLIP2ViT(checkpoint=str(tiny_dir))
    same = FGCLIP2ViT(checkpoint=str(tiny_dir))
    bb.load_state_dict(same.state_dict())  # the same FG-CLIP 2 loads
    with pytest.raises(ValueError, match=r"fgclip2\.vision_model.*differ from model\.backbone\.checkpoint"):
        bb.load_state_dict(other.state_dict())
    # trainable blocks are trained by the detector: only they may differ
    tuned = FGCLIP2ViT(checkpoint=str(tiny_dir), trainable_blocks=1)
    state = same.state_dict()
    state["fgclip2.vision_model.encoder.layers.1.mlp.fc1.weight"] += 0.5
    tuned.load_state_dict(state)
    assert torch.equal(tuned.fgclip2.vision_model.encoder.layers[1].mlp.fc1.weight,
                       state["fgclip2.vision_model.encoder.layers.1.mlp.fc1.weight"])
    state["fgclip2.vision_model.encoder.layers.0.mlp.fc1.weight"] += 0.5
    with pytest.raises(ValueError, match="layers.0.mlp.fc1.weight"):
        tuned.load_state_dict(state)
    FGCLIP2ViT(checkpoint=str(tiny_dir), frozen=False).load_state_dict(other.state_dict())  # all trained
