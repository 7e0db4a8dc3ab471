"""Dense-feature surgery (ClearCLIP / SCLIP / NACLIP adapted to FG-CLIP 2): every named variant
against the same computation written out with plain matrix products and softmaxes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fgclip2_det.openvocab.dense_surgery import (DENSE_MODES, DenseSurgery, backbone_dense, gaussian_prior,
                                                 resolve_dense_mode, surgery_attention, surgery_dense_maps)


# ------------------------------------------------------------------------------- hand computation
def attention_map(q, k, kind, grid, std):
    """(heads, N, N) attention weights, written out (q, k: (heads, N, hd))."""
    s = q.shape[-1] ** -0.5
    if kind == "qk":
        return (s * q @ k.transpose(1, 2)).softmax(-1)
    if kind == "qq":
        return (s * q @ q.transpose(1, 2)).softmax(-1)
    if kind == "kk":
        return (s * k @ k.transpose(1, 2)).softmax(-1)
    if kind == "qq+kk":
        return (s * q @ q.transpose(1, 2)).softmax(-1) + (s * k @ k.transpose(1, 2)).softmax(-1)
    h, w = grid
    g = torch.empty(h * w, h * w)
    for i in range(h * w):  # the Gaussian prior cell by cell
        for j in range(h * w):
            d2 = (i // w - j // w) ** 2 + (i % w - j % w) ** 2
            g[i, j] = math.exp(-d2 / (2 * std ** 2))
    return (s * k @ k.transpose(1, 2) + g).softmax(-1)


def mixed(x, wq, bq, wk, bk, wv, bv, wo, bo, heads, kind, grid, std):
    """out_proj(A V) of one image's (N, D) tokens, heads split by hand."""
    n, d = x.shape
    split = lambda t: t.reshape(n, heads, d // heads).permute(1, 0, 2)  # noqa: E731
    q, k, v = split(x @ wq.T + bq), split(x @ wk.T + bk), split(x @ wv.T + bv)
    out = (attention_map(q, k, kind, grid, std) @ v).permute(1, 0, 2).reshape(n, d)
    return out @ wo.T + bo


def hand_head(model, tokens, grid, spec):
    head = model.dense_feature_head
    att = head.attention
    d = tokens.shape[-1]
    wq, wk, wv = att.in_proj_weight.split(d)
    bq, bk, bv = att.in_proj_bias.split(d)
    h = mixed(tokens, wq, bq, wk, bk, wv, bv, att.out_proj.weight, att.out_proj.bias, att.num_heads,
              spec.head_attention, grid, spec.gaussian_std)
    if not spec.head_mlp:
        return h
    ln = F.layer_norm(h, (d,), head.layernorm.weight, head.layernorm.bias, head.layernorm.eps)
    mlp = F.gelu(ln @ head.mlp.fc1.weight.T + head.mlp.fc1.bias, approximate="tanh")
    return h + mlp @ head.mlp.fc2.weight.T + head.mlp.fc2.bias


def hand_last_block(layer, x, grid, spec):
    a, d = layer.self_attn, x.shape[-1]
    ln = lambda t, m: F.layer_norm(t, (d,), m.weight, m.bias, m.eps)  # noqa: E731
    out = mixed(ln(x, layer.layer_norm1), a.q_proj.weight, a.q_proj.bias, a.k_proj.weight, a.k_proj.bias,
                a.v_proj.weight, a.v_proj.bias, a.out_proj.weight, a.out_proj.bias, a.num_heads,
                spec.block_attention, grid, spec.gaussian_std)
    if spec.block_reduced:
        return out
    x = x + out
    hidden = F.gelu(ln(x, layer.layer_norm2) @ layer.mlp.fc1.weight.T + layer.mlp.fc1.bias, approximate="tanh")
    return x + hidden @ layer.mlp.fc2.weight.T + layer.mlp.fc2.bias


def hand_dense(model, image, spec):
    """(D, h, w) dense map of one image under ``spec``, by hand from the encoder's block outputs."""
    vision = model.vision_model
    grid = (image.shape[-2] // 16, image.shape[-1] // 16)
    out = vision([image], out_indices=(0,))  # the tiny encoder has 2 blocks: block 0 feeds the last one
    if spec.block_attention is None:
        tokens = out.tokens
    else:
        x = hand_last_block(vision.encoder.layers[-1], out.intermediates[0], grid, spec)
        tokens = F.layer_norm(x, x.shape[-1:], vision.post_layernorm.weight, vision.post_layernorm.bias,
                              vision.post_layernorm.eps)
    if spec.block_attention is not None:  # the official dense head after the block surgery
        dense = model.dense_feature_head.dense(tokens, [grid[0] * grid[1]])
    else:
        dense = hand_head(model, tokens, grid, spec)
    return dense.t().reshape(-1, *grid)


# ------------------------------------------------------------------------------------------ tests
def test_the_named_variants():
    assert set(DENSE_MODES) == {"head", "head_drop_mlp", "clearclip", "clearclip_keep_mlp", "sclip",
                                "sclip_drop_mlp", "naclip", "naclip_keep_mlp", "clearclip_block",
                                "sclip_block", "naclip_block"}
    assert DENSE_MODES["head"].is_official and not any(s.is_official for n, s in DENSE_MODES.items() if n != "head")
    assert DENSE_MODES["clearclip"] == DenseSurgery(head_attention="qq", head_mlp=False)
    assert DENSE_MODES["sclip"] == DenseSurgery(head_attention="qq+kk", head_mlp=True)
    assert DENSE_MODES["naclip"] == DenseSurgery(head_attention="kk+gauss", head_mlp=False, gaussian_std=5.0)
    assert DENSE_MODES["sclip_block"].block_reduced is False  # SCLIP keeps the residual and the FFN
    assert DENSE_MODES["clearclip_block"].block_reduced and DENSE_MODES["naclip_block"].block_reduced


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown dense_mode 'maskclip'; choose one of \['clearclip'"):
        resolve_dense_mode("maskclip")
    with pytest.raises(ValueError, match="head_attention must be one of"):
        DenseSurgery(head_attention="vv")
    with pytest.raises(ValueError, match="gaussian_std must be positive"):
        DenseSurgery(gaussian_std=0)
    with pytest.raises(ValueError, match="needs the"):
        surgery_attention(torch.randn(6, 8), torch.randn(6, 8), torch.randn(6, 8), 2, "kk+gauss", (2, 2))


def test_gaussian_prior_values():
    g = gaussian_prior(3, 4, std=2.0)
    assert g.shape == (12, 12) and torch.allclose(g.diagonal(), torch.ones(12))
    assert g[0, 1].item() == pytest.approx(math.exp(-1 / 8))  # (0,0)-(0,1)
    assert g[0, 5].item() == pytest.approx(math.exp(-2 / 8))  # (0,0)-(1,1)
    assert g[0, 11].item() == pytest.approx(math.exp(-(4 + 9) / 8))  # (0,0)-(2,3)
    assert torch.equal(g, g.t())


@pytest.mark.parametrize("kind", ["qk", "qq", "kk", "qq+kk", "kk+gauss"])
def test_attention_kinds_match_the_written_out_softmax(kind):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 12, 8).unbind(0)
    out = surgery_attention(q, k, v, 2, kind, (3, 4), 1.5)
    split = lambda t: t.reshape(12, 2, 4).permute(1, 0, 2)  # noqa: E731
    expected = (attention_map(split(q), split(k), kind, (3, 4), 1.5) @ split(v)).permute(1, 0, 2).reshape(12, 8)
    assert torch.allclose(out, expected, atol=1e-5)


def test_the_official_spec_reproduces_the_dense_head(tiny_model, make_images):
    """The surgery code path with no surgery == FGCLIP2.vision_features' dense maps."""
    images = make_images([(48, 64), (32, 80)], seed=3)
    official = tiny_model.vision_features(images, with_global=False).dense_maps
    with torch.no_grad():
        ours = surgery_dense_maps(tiny_model, images, "head")
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, official))


@pytest.mark.parametrize("mode", sorted(DENSE_MODES))
def test_every_variant_against_the_hand_computation(mode, tiny_model, make_images):
    """Two images of different grids in one batch: each equals its hand computation (so a batch-mate
    never changes it)."""
    spec = DENSE_MODES[mode]
    images = make_images([(48, 64), (64, 32)], seed=7)
    with torch.no_grad():
        maps = surgery_dense_maps(tiny_model, images, mode)
        for image, got in zip(images, maps):
            expected = hand_dense(tiny_model, image, spec)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-4), (mode, float((got - expected).abs().max()))
    if mode != "head":  # a surgery really changes the features
        official = tiny_model.vision_features(images[:1], with_global=False).dense_maps[0]
        assert not torch.allclose(maps[0], official, atol=1e-3)


def test_gaussian_std_changes_only_the_prior(tiny_model, make_images):
    images = make_images([(48, 48)], seed=2)
    with torch.no_grad():
        wide = surgery_dense_maps(tiny_model, images, DenseSurgery(head_attention="kk+gauss", gaussian_std=1e4))
        kk = surgery_dense_maps(tiny_model, images, DenseSurgery(head_attention="kk"))
    # a prior of ~1 everywhere is a constant shift of every logit row: the softmax ignores it
    assert torch.allclose(wide[0], kk[0], atol=1e-4)


def test_backbone_dense_pads_like_the_backbone(tiny_dir, make_images):
    """Same cropping and zero padding as FGCLIP2ViT.forward; 'head' equals its .dense exactly."""
    from fgclip2_det.openvocab import FGCLIP2ViT

    backbone = FGCLIP2ViT(checkpoint=str(tiny_dir), out_indices=())
    small, big = make_images([(40, 60), (64, 96)], seed=4)
    x = torch.zeros(2, 3, 64, 96)
    x[0, :, :40, :60], x[1] = small, big
    shapes = [(40, 60), (64, 96)]
    with torch.no_grad():
        assert torch.allclose(backbone_dense(backbone, x, shapes, "head"), backbone(x, shapes).dense, atol=1e-5)
        dense = backbone_dense(backbone, x, shapes, "clearclip")
        alone = surgery_dense_maps(backbone.fgclip2, [x[0, :, :48, :64]], "clearclip")[0]  # crop rounded up
    assert dense.shape == (2, backbone.embed_dim, 4, 6)
    assert torch.allclose(dense[0, :, :3, :4], alone, atol=1e-5)
    assert dense[0, :, 3:].abs().sum() == 0 and dense[0, :, :, 4:].abs().sum() == 0
