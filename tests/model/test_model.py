"""FG-CLIP 2 model: parity with transformers' Siglip2Model on the shared parts, written formulas for
the FG-CLIP 2-only parts (long text, box/long heads, dense head, regions), batch independence."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fgclip2_det.model import FGCLIP2
from fgclip2_det.utils.hf_reference import build_siglip2, padded_naflex_inputs, reference_dense_head

SIZES = [(224, 224), (160, 320), (320, 128), (96, 208)]


@pytest.fixture(scope="module")
def hf_model(tiny_model):
    """transformers' Siglip2Model (eager attention) holding the tiny checkpoint's shared weights."""
    return build_siglip2(tiny_model, "eager")


def hf_last_hidden(hf_model, images):
    pv, mask, shapes = padded_naflex_inputs(images)
    out = hf_model.vision_model(pixel_values=pv, pixel_attention_mask=mask, spatial_shapes=shapes)
    return out, mask


# ------------------------------------------------------------------------- parity with Siglip2Model
@pytest.mark.parametrize("sizes", [[(224, 224)], SIZES, [(128, 384), (384, 128)]],
                         ids=["single", "mixed-batch", "aspect-ratios"])
def test_image_embedding_matches_siglip2(tiny_model, hf_model, make_images, sizes):
    images = make_images(sizes)
    with torch.no_grad():
        ours = tiny_model.encode_image(images)
        out, _ = hf_last_hidden(hf_model, images)
        ref = F.normalize(out.pooler_output, dim=-1)
    assert (ours - ref).abs().max() <= 1e-5


def test_short_text_matches_siglip2(tiny_model, hf_model):
    ids = torch.randint(0, tiny_model.config.text.vocab_size, (5, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = tiny_model.encode_text(ids, "short")
        ref = F.normalize(hf_model.text_model(input_ids=ids).pooler_output, dim=-1)
    assert (ours - ref).abs().max() <= 1e-5


def test_short_text_with_attention_mask_matches_siglip2(tiny_model, hf_model):
    ids = torch.randint(0, 100, (3, 64), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(3, 64, dtype=torch.long)
    mask[0, 10:] = 0
    mask[1, 40:] = 0
    with torch.no_grad():
        ours = tiny_model.encode_text(ids, "short", attention_mask=mask)
        ref = F.normalize(hf_model.text_model(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
    assert (ours - ref).abs().max() <= 1e-5


# ------------------------------------------------------------------------ FG-CLIP 2-only parts
def test_box_text_is_boxtext_head_of_last_token(tiny_model, hf_model):
    ids = torch.randint(0, 100, (4, 64), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        last = hf_model.text_model(input_ids=ids).last_hidden_state[:, -1]
        head = tiny_model.boxtext_head
        ref = F.normalize(last @ head.weight.t() + head.bias, dim=-1)
        ours = tiny_model.encode_text(ids, "box")
    assert (ours - ref).abs().max() <= 1e-5


def test_long_text_uses_ori_then_res_positions(tiny_model, hf_model):
    """Formula: emb = tok + ori[pos] for pos < 20, tok + res[pos] after; longtext_head on the last token."""
    emb = tiny_model.text_model.embeddings
    ori, res = emb.position_embedding_ori.weight, emb.position_embedding_res.weight
    table = torch.cat([ori[:20], res[20:]]).detach()
    hf_text = hf_model.text_model
    saved = hf_text.embeddings.position_embedding
    hf_text.embeddings.position_embedding = torch.nn.Embedding.from_pretrained(table)
    hf_text.embeddings.position_ids = torch.arange(196)[None]
    ids = torch.randint(0, 100, (3, 196), generator=torch.Generator().manual_seed(4))
    try:
        with torch.no_grad():
            last = hf_text(input_ids=ids).last_hidden_state[:, -1]
            head = tiny_model.longtext_head
            ref = F.normalize(last @ head.weight.t() + head.bias, dim=-1)
            ours = tiny_model.encode_text(ids, "long")
    finally:
        hf_text.embeddings.position_embedding = saved
        hf_text.embeddings.position_ids = torch.arange(64)[None]
    assert (ours - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("sizes", [[(160, 224)], SIZES], ids=["single", "padded-batch"])
def test_dense_head_matches_formula(tiny_model, hf_model, make_images, sizes):
    images = make_images(sizes, seed=5)
    with torch.no_grad():
        out, mask = hf_last_hidden(hf_model, images)
        ref = reference_dense_head(tiny_model.dense_feature_head, out.last_hidden_state, mask == 0)
        ours = tiny_model.encode_dense(images)
    for i, img in enumerate(images):
        h, w = img.shape[1] // 16, img.shape[2] // 16
        expected = F.normalize(ref[i, : h * w], dim=-1).t().reshape(-1, h, w)
        assert ours[i].shape == (tiny_model.config.embed_dim, h, w)
        assert (ours[i] - expected).abs().max() <= 1e-5


def reference_roi_align_1x1(fmap, box, scale):
    """torchvision/mmcv RoIAlign, output 1x1, aligned=True, sampling_ratio adaptive, written out."""
    _, height, width = fmap.shape
    x1, y1, x2, y2 = (float(v) * scale - 0.5 for v in box)
    roi_w, roi_h = x2 - x1, y2 - y1
    gw, gh = math.ceil(roi_w), math.ceil(roi_h)
    count = max(gw * gh, 1)
    acc = torch.zeros(fmap.shape[0], dtype=torch.float64)
    for iy in range(gh):
        y = y1 + (iy + 0.5) * roi_h / gh
        for ix in range(gw):
            x = x1 + (ix + 0.5) * roi_w / gw
            if y < -1.0 or y > height or x < -1.0 or x > width:
                continue
            y, x = max(y, 0.0), max(x, 0.0)
            y0, x0 = int(y), int(x)
            if y0 >= height - 1:
                y0 = y1_ = height - 1
                y = float(y0)
            else:
                y1_ = y0 + 1
            if x0 >= width - 1:
                x0 = x1_ = width - 1
                x = float(x0)
            else:
                x1_ = x0 + 1
            ly, lx = y - y0, x - x0
            f = fmap.double()
            acc += ((1 - ly) * (1 - lx) * f[:, y0, x0] + (1 - ly) * lx * f[:, y0, x1_]
                    + ly * (1 - lx) * f[:, y1_, x0] + ly * lx * f[:, y1_, x1_])
    return (acc / count).float()


REGION_BOXES = torch.tensor([[0.0, 0.0, 224.0, 160.0], [10.5, 20.0, 60.0, 33.0], [100.0, 40.0, 180.0, 150.0],
                             [-20.0, -10.0, 30.0, 25.0], [200.0, 150.0, 260.0, 170.0]])


def test_regions_are_roi_align_on_unnormalised_dense_map(tiny_model, make_images):
    images = make_images([(160, 224)], seed=6)
    with torch.no_grad():
        dense = tiny_model.vision_features(images, with_global=False).dense_maps[0]
        ours = tiny_model.encode_regions(images, [REGION_BOXES])[0]
    for b, got in zip(REGION_BOXES, ours):
        expected = F.normalize(reference_roi_align_1x1(dense, b, 1 / 16), dim=0)
        assert (got - expected).abs().max() <= 1e-5


def test_mmcv_roi_align_noncontiguous_pitfall_is_pinned():
    """mmcv's CPU roi_align (mmcv 2.1.0) misreads non-contiguous input. If this starts passing with
    equal values, mmcv fixed it; our pool_regions must stay right either way."""
    from mmcv.ops import roi_align

    fmap = torch.randn(1, 10, 12, 8).permute(0, 3, 1, 2)  # (1, 8, 10, 12), non-contiguous
    assert not fmap.is_contiguous()
    rois = torch.tensor([[0.0, 1.0, 1.0, 7.0, 9.0]])
    wrong = roi_align(fmap, rois, (1, 1), 1.0, 0, "avg", True)
    right = roi_align(fmap.contiguous(), rois, (1, 1), 1.0, 0, "avg", True)
    reference = reference_roi_align_1x1(fmap[0], rois[0, 1:], 1.0)
    assert (right.flatten() - reference).abs().max() <= 1e-5
    assert (wrong.flatten() - reference).abs().max() > 1e-3, "mmcv now handles non-contiguous input"


def test_pool_regions_is_right_on_noncontiguous_maps(tiny_model):
    fmap = torch.randn(10, 14, tiny_model.config.embed_dim).permute(2, 0, 1)
    box = torch.tensor([[16.0, 8.0, 150.0, 120.0]])
    got = tiny_model.pool_regions([fmap], [box])[0][0]
    assert (got - F.normalize(reference_roi_align_1x1(fmap, box[0], 1 / 16), dim=0)).abs().max() <= 1e-5


def test_results_do_not_depend_on_batch(tiny_model, make_images):
    images = make_images(SIZES, seed=7)
    with torch.no_grad():
        batch = tiny_model.vision_features(images)
        for i, img in enumerate(images):
            alone = tiny_model.vision_features([img])
            assert (batch.image_embeds[i] - alone.image_embeds[0]).abs().max() <= 1e-5
            assert (batch.dense_maps[i] - alone.dense_maps[0]).abs().max() <= 1e-5


def test_tensor_batch_equals_list(tiny_model, make_images):
    images = make_images([(128, 160)] * 3, seed=8)
    with torch.no_grad():
        a = tiny_model.encode_image(torch.stack(images))
        b = tiny_model.encode_image(images)
    assert torch.allclose(a, b, atol=1e-6)


def test_intermediates_are_block_outputs(tiny_model, hf_model, make_images):
    images = make_images([(96, 128)], seed=9)
    with torch.no_grad():
        feats = tiny_model.vision_features(images, out_indices=(0, 1))
        pv, mask, shapes = padded_naflex_inputs(images)
        hf = hf_model.vision_model(pixel_values=pv, pixel_attention_mask=mask, spatial_shapes=shapes,
                                   output_hidden_states=True)
    for k, block in enumerate((0, 1)):
        expected = hf.hidden_states[block + 1][0].t().reshape(-1, 6, 8)
        assert (feats.intermediates[k][0] - expected).abs().max() <= 1e-4


def test_logits_are_scaled_cosine_plus_bias(tiny_model):
    a, b = F.normalize(torch.randn(2, 64), dim=-1), F.normalize(torch.randn(3, 64), dim=-1)
    expected = a @ b.t() * tiny_model.logit_scale.exp() + tiny_model.logit_bias
    assert torch.allclose(tiny_model.logits(a, b), expected)


# ------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("bad, match", [
    (torch.zeros(3, 100, 64), "multiples of 16"),
    (torch.zeros(1, 64, 64), "expected shape"),
    (torch.zeros(3, 64, 64, dtype=torch.uint8), "float tensor"),
])
def test_bad_images_raise(tiny_model, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny_model.encode_image([bad])


def test_no_images_raises(tiny_model):
    with pytest.raises(ValueError, match="no images"):
        tiny_model.encode_image([])


@pytest.mark.parametrize("boxes, match", [
    (torch.tensor([[0.0, 0.0, float("nan"), 10.0]]), r"image 0: box 0 is not finite"),
    (torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 5.0, 10.0, 30.0]]), r"image 0: box 1 has x2 < x1"),
    (torch.zeros(2, 5), r"\(N, 4\)"),
])
def test_bad_boxes_raise(tiny_model, make_images, boxes, match):
    with pytest.raises(ValueError, match=match):
        tiny_model.encode_regions(make_images([(64, 64)]), [boxes])


def test_empty_and_degenerate_boxes(tiny_model, make_images):
    images = make_images([(64, 64), (64, 96)])
    with torch.no_grad():
        out = tiny_model.encode_regions(images, [torch.zeros(0, 4), torch.tensor([[10.0, 10.0, 10.0, 40.0]])])
    assert out[0].shape == (0, 64)
    assert torch.equal(out[1], torch.zeros(1, 64)), "zero-width box -> zero vector (documented)"


def test_box_list_count_must_match(tiny_model, make_images):
    with pytest.raises(ValueError, match="2 box lists for 1 images"):
        tiny_model.encode_regions(make_images([(64, 64)]), [torch.zeros(0, 4)] * 2)


@pytest.mark.parametrize("shape, kind, match", [
    ((2, 64), "caption", "unknown text kind"),
    ((2, 63), "short", r"\(B, 64\)"),
    ((2, 64), "long", r"\(B, 196\)"),
])
def test_bad_text_raises(tiny_model, shape, kind, match):
    with pytest.raises(ValueError, match=match):
        tiny_model.encode_text(torch.zeros(shape, dtype=torch.long), kind)


def test_out_of_vocab_ids_raise(tiny_model):
    ids = torch.full((1, 64), tiny_model.config.text.vocab_size)
    with pytest.raises(ValueError, match="tokenizer/checkpoint mismatch"):
        tiny_model.encode_text(ids, "box")


def test_presets_have_expected_shapes():
    from fgclip2_det.model import FGCLIP2Config

    expected = {"base": (768, 12, 256000), "large": (1024, 24, 256000), "so400m": (1152, 27, 256000)}
    for name, (dim, depth, vocab) in expected.items():
        cfg = FGCLIP2Config.preset(name)
        assert (cfg.embed_dim, cfg.vision.num_hidden_layers, cfg.text.vocab_size) == (dim, depth, vocab)
        with torch.device("meta"):
            model = FGCLIP2(cfg)
        keys = model.state_dict().keys()
        assert "dense_feature_head.attention.in_proj_weight" in keys
        assert model.state_dict()["text_model.embeddings.position_embedding_res.weight"].shape == (196, dim)
    n = sum(p.numel() for p in FGCLIP2(FGCLIP2Config.preset("tiny")).parameters())
    assert n < 1_000_000


def test_block_indices_follow_timm(tiny_model, make_images):
    """Negative indices count from the end, an int n takes the last n blocks, out of range raises;
    maps come back in the order asked for (timm's feature_take_indices)."""
    from fgclip2_det.model.layers import take_indices

    depth = tiny_model.config.vision.num_hidden_layers
    assert take_indices([0, -1], depth) == (0, depth - 1) and take_indices(1, depth) == (depth - 1,)
    assert take_indices(depth, depth) == tuple(range(depth))
    with pytest.raises(ValueError, match=f"entry {depth} is outside the encoder's {depth} blocks"):
        take_indices([depth], depth)
    with pytest.raises(ValueError, match=f"last {depth + 1} of the encoder's {depth} blocks"):
        take_indices(depth + 1, depth)
    images = make_images([(32, 48)])
    with torch.no_grad():
        asked = tiny_model.vision_features(images, out_indices=[-1, 0], with_global=False, with_dense=False)
        plain = tiny_model.vision_features(images, out_indices=[0, depth - 1], with_global=False, with_dense=False)
    assert torch.equal(asked.intermediates[0][0], plain.intermediates[1][0])
    assert torch.equal(asked.intermediates[1][0], plain.intermediates[0][0])

