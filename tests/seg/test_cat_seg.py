"""CAT-Seg on FG-CLIP 2 (fgclip2_det/seg/cat_seg): guided Swin blocks against a direct computation,
chunked = unchunked aggregation, QV fine-tuning (which parameters, their gradients), the text tower in
the forward, class-permutation equivariance, the decoder's guidance taps, the BCE loss by hand, sliding
= whole inference, the recipe configs, a few runner iterations on the synthetic world, the memory probe."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import PixelData
from mmdet.structures import DetDataSample

from det_helpers import ROOT, in_mmdet_scope, mmdet_scope, shared_text_cache  # noqa: F401 (mmdet_scope: autouse fixture)
from fgclip2_det.model.config import FGCLIP2Config
from fgclip2_det.seg.cat_seg import (CATSegAggregator, ClassAggregationLayer, GuidedSwinBlock, SplitInProjAttention,
                                     default_guidance_layers, split_dense_head)
from fgclip2_det.seg.cat_seg.swin import effective_window, window_merge, window_partition

CONFIG = ROOT / "configs" / "ovseg" / "cat-seg_fgclip2-tiny_synthetic.py"
META = Config.fromfile(str(CONFIG)).train_dataloader.dataset.metainfo
TINY_AGGREGATOR = dict(hidden_dim=32, text_guidance_dim=16, appearance_guidance_dim=16, decoder_dims=(32, 16),
                       decoder_guidance_dims=(32, 16), decoder_guidance_proj_dims=(16, 8), window_size=4)


def build(tiny_dir, vocabulary=None, **overrides):
    """The tiny synthetic config's model on the session's tiny checkpoint, vocabulary set, eval mode."""
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict({"model.backbone.checkpoint": str(tiny_dir),
                         "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
                         "model.text_classifier.progress": False, **overrides})
    with in_mmdet_scope():
        model = MODELS.build(cfg.model)
    if vocabulary is None:
        model.set_vocabulary_from_meta(dict(META))
    else:
        model.set_vocabulary(*vocabulary)
    return model.eval()


def sample(h, w, gt=None, path="img.jpg", ori=None):
    s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=ori or (h, w), img_path=path))
    if gt is not None:
        s.gt_sem_seg = PixelData(sem_seg=gt[None])
    return s


# ------------------------------------------------------------------------------ Swin blocks
def test_window_partition_round_trip():
    x = torch.randn(2, 8, 12, 3)
    w = window_partition(x, 4)
    assert w.shape == (2, 6, 16, 3)
    assert torch.equal(w[1, 3], x[1, 4:8, 0:4].reshape(16, 3))  # window (row 1, col 0), tokens row-major
    assert torch.equal(window_merge(w, 4, 8, 12), x)


def _reference_swin_block(block: GuidedSwinBlock, x, g):
    """Direct computation: every token attends to the tokens of its window (in the cyclically
    shifted frame) that come from the same image region, q/k from concat(LN(x), g), v from LN(x)."""
    b, k, h, w, c = x.shape
    ws, s = effective_window(h, w, block.window_size, block.shift)
    y = block.norm1(x)
    gg = g[:, None].expand(b, k, *g.shape[1:])
    if s:
        y, gg = torch.roll(y, (-s, -s), (2, 3)), torch.roll(gg, (-s, -s), (2, 3))
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    window = (rows // ws) * (w // ws) + cols // ws

    def band(i, n):  # Swin's three bands per axis after the shift
        return torch.where(i < n - ws, 0, torch.where(i < n - s, 1, 2)) if s else torch.zeros_like(i)

    region = band(rows, h) * 3 + band(cols, w)
    window, region = window.flatten(), region.flatten()
    allowed = (window[:, None] == window[None]) & (region[:, None] == region[None])
    attn = block.attn
    qk_in = torch.cat([y, gg], -1).reshape(b, k, h * w, -1)
    heads = attn.num_heads
    q = attn.q(qk_in).reshape(b, k, h * w, heads, -1).transpose(2, 3)
    kk = attn.k(qk_in).reshape(b, k, h * w, heads, -1).transpose(2, 3)
    v = attn.v(y.reshape(b, k, h * w, c)).reshape(b, k, h * w, heads, -1).transpose(2, 3)
    scores = q @ kk.transpose(-1, -2) / math.sqrt(q.shape[-1])
    out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    out = attn.proj(out.transpose(2, 3).reshape(b, k, h, w, c))
    if s:
        out = torch.roll(out, (s, s), (2, 3))
    x = x + out
    return x + block.mlp(block.norm2(x))


@pytest.mark.parametrize("shift,size", [(0, (8, 12)), (2, (8, 12)), (2, (4, 4))])
def test_guided_swin_block_matches_a_direct_computation(shift, size):
    torch.manual_seed(0)
    block = GuidedSwinBlock(dim=16, guidance_dim=6, num_heads=4, window_size=4, shift=shift)
    x, g = torch.randn(2, 3, *size, 16), torch.randn(2, *size, 6)
    assert torch.allclose(block(x, g), _reference_swin_block(block, x, g), atol=1e-5)
    # one class at a time: classes never mix in spatial aggregation
    assert torch.allclose(block(x[:, 1:2], g), block(x, g)[:, 1:2], atol=1e-6)


def test_swin_grid_not_a_multiple_of_the_window_is_an_error():
    block = GuidedSwinBlock(dim=8, guidance_dim=2, num_heads=2, window_size=4, shift=2)
    with pytest.raises(ValueError, match="6x10 feature grid is not a multiple of the 4-token window"):
        block(torch.randn(1, 1, 6, 10, 8), torch.randn(1, 6, 10, 2))


# ------------------------------------------------------------------------------ aggregation
def test_class_aggregation_is_linear_attention_over_classes():
    """Pooling (1, 1): x + y + MLP(LN(y)), y = x + A, A = phi(Q) (sum_k phi(K_k) V_k^T) / (phi(Q) . sum_k phi(K_k))
    (CAT-Seg adds the whole upsampled block output, itself residual, to the block input)."""
    torch.manual_seed(0)
    layer = ClassAggregationLayer(dim=8, guidance_dim=3, num_heads=2)
    x, g = torch.randn(1, 5, 2, 3, 8), torch.randn(5, 3)
    out = layer(x, g, (1, 1), [slice(0, 5)])
    t = x[0, :, 1, 2]                                                   # (K, C) at location (1, 2)
    n = layer.norm1(t)
    phi = lambda z: F.elu(z) + 1  # noqa: E731
    q = phi(layer.q(torch.cat([n, g], -1))).reshape(5, 2, 4)
    k = phi(layer.k(torch.cat([n, g], -1))).reshape(5, 2, 4)
    v = layer.v(n).reshape(5, 2, 4)
    kv = torch.einsum("khd,khe->hde", k, v)
    a = torch.einsum("khd,hde->khe", q, kv) / torch.einsum("khd,hd->kh", q, k.sum(0))[..., None]
    y = t + a.reshape(5, 8)
    assert torch.allclose(out[0, :, 1, 2], t + y + layer.mlp(layer.norm2(y)), atol=1e-5)


def test_class_aggregation_pads_with_a_learned_token_as_cat_seg():
    """CAT-Seg's ``ClassTransformerLayer`` with pad_len: the pooled class tokens get pad_len - K copies of
    the padding token (guidance: of the padding guidance) appended, linear attention runs over all
    pad_len tokens (values / v_length ... * v_length), the MLP follows, and the pads are dropped."""
    torch.manual_seed(0)
    k_real, pad_len = 3, 8
    layer = ClassAggregationLayer(dim=8, guidance_dim=3, num_heads=2, pad_len=pad_len)
    with torch.no_grad():
        layer.padding_token.normal_()
        layer.padding_guidance.normal_()
    x, g = torch.randn(1, k_real, 2, 3, 8), torch.randn(k_real, 3)
    out = layer(x, g, (1, 1), [slice(0, 2), slice(2, 3)])
    phi = lambda z: F.elu(z) + 1  # noqa: E731
    for i, j in ((0, 0), (1, 2)):
        t = torch.cat([x[0, :, i, j], layer.padding_token.expand(pad_len - k_real, 8)])      # (T, C)
        gt = torch.cat([g, layer.padding_guidance.expand(pad_len - k_real, 3)])
        n = layer.norm1(t)
        q = phi(layer.q(torch.cat([n, gt], -1))).reshape(pad_len, 2, 4)
        k = phi(layer.k(torch.cat([n, gt], -1))).reshape(pad_len, 2, 4)
        v = layer.v(n).reshape(pad_len, 2, 4) / pad_len
        kv = torch.einsum("khd,khe->hde", k, v)
        z = 1 / (torch.einsum("khd,hd->kh", q, k.sum(0)) + layer.eps)
        a = torch.einsum("khd,hde,kh->khe", q, kv, z) * pad_len
        y = t + a.reshape(pad_len, 8)
        y = y + layer.mlp(layer.norm2(y))
        assert torch.allclose(out[0, :, i, j], x[0, :, i, j] + y[:k_real], atol=1e-5)
    unpadded = ClassAggregationLayer(dim=8, guidance_dim=3, num_heads=2)
    unpadded.load_state_dict({n: w for n, w in layer.state_dict().items() if not n.startswith("padding")})
    assert not torch.allclose(unpadded(x, g, (1, 1), [slice(0, 3)]), out, atol=1e-3)  # the pads matter


def test_more_classes_than_pad_len_keep_each_images_top_classes(one_thread):
    """Above pad_len classes, each image runs the pad_len classes whose cost peaks highest (max over
    prompts and positions); their logits equal a run on those classes alone, the others are -100."""
    agg = _aggregator(pad_len=4).eval()
    dense, text, guidance = _aggregator_inputs(k=7)
    with torch.no_grad():
        out = agg(dense, text, guidance)
        for b in range(2):
            cost = torch.einsum("dhw,kpd->kphw", F.normalize(dense[b], dim=0), F.normalize(text, dim=-1))
            keep = cost.flatten(1).amax(1).topk(4).indices.sort().values
            alone = agg(dense[b:b + 1], text[keep], [g[b:b + 1] for g in guidance])
            assert torch.allclose(out[b, keep], alone[0], atol=1e-5)
            dropped = torch.ones(7, dtype=torch.bool)
            dropped[keep] = False
            assert torch.all(out[b, dropped] == -100.0)


@pytest.fixture
def one_thread():
    """Tiny tensors: one thread (two threads on a loaded machine stall for seconds per new shape)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _aggregator(**kw):
    torch.manual_seed(0)
    return CATSegAggregator(embed_dim=12, guidance_width=10, **{**TINY_AGGREGATOR, **kw})


def _aggregator_inputs(k=7, p=1):
    gen = torch.Generator().manual_seed(1)
    dense = torch.randn(2, 12, 8, 8, generator=gen)
    text = torch.randn(k, p, 12, generator=gen)
    return dense, text, [torch.randn(2, 10, 8, 8, generator=gen), torch.randn(2, 10, 8, 8, generator=gen)]


@pytest.mark.parametrize("pooling", [(2, 2), (1, 1)])
def test_chunked_and_unchunked_class_aggregation_agree(pooling, one_thread):
    # without CAT-Seg's padding: 249 identical pad tokens out of 256 make the float32 gradients of the
    # 7 real classes ill-conditioned (~1e-3 apart between summation orders); the padded forward is
    # checked against an explicit computation above, and padded outputs are compared below
    agg = _aggregator(pad_len=0)
    dense, text, guidance = _aggregator_inputs(k=7)
    dense.requires_grad_(True)
    results = []
    for chunk, with_cp in ((None, False), (3, False), (3, True), (1, False)):
        agg.class_chunk, agg.with_cp = chunk, with_cp
        agg.zero_grad()
        dense.grad = None
        out = agg(dense, text, guidance, pooling_size=pooling)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), dense.grad.clone(), agg.classwise[0].q.weight.grad.clone(),
                        agg.spatial[1].block2.attn.k.weight.grad.clone(), agg.up1.up.weight.grad.clone()))
    assert results[0][0].shape == (2, 7, 32, 32)
    for other in results[1:]:
        for a, b in zip(results[0], other):  # same numbers up to float32 summation order
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    padded = _aggregator()
    with torch.no_grad():
        whole = padded(dense, text, guidance, pooling_size=pooling)
        padded.class_chunk = 3
        assert (padded(dense, text, guidance, pooling_size=pooling) - whole).abs().max() <= 1e-5 * whole.abs().max()


def test_aggregator_is_class_permutation_equivariant_and_takes_any_vocabulary(one_thread):
    agg = _aggregator(class_chunk=4).eval()
    for k in (1, 9):
        dense, text, guidance = _aggregator_inputs(k=k, p=2)
        agg2 = _aggregator(prompt_channels=2, class_chunk=4).eval()
        out = agg2(dense, text, guidance)
        perm = torch.randperm(k, generator=torch.Generator().manual_seed(k))
        assert torch.allclose(agg2(dense, text[perm], guidance), out[:, perm], atol=1e-5)
    with pytest.raises(ValueError, match="prompt_channels=1"):
        agg(*_aggregator_inputs(k=3, p=2))
    with pytest.raises(ValueError, match="2 guidance maps"):
        agg(dense[:, :12], text[:, :1], guidance[:1])


# ------------------------------------------------------------------------------ fine-tuning
def test_split_dense_head_computes_what_the_packed_one_does(tiny_model, make_images):
    import copy

    model = copy.deepcopy(tiny_model)
    images = make_images([(64, 48), (32, 80)], seed=3)
    before = model.encode_dense(images)
    packed = model.dense_feature_head.attention
    split_dense_head(model)
    head = model.dense_feature_head.attention
    assert isinstance(head, SplitInProjAttention)
    assert torch.equal(torch.cat([head.q_proj.weight, head.k_proj.weight, head.v_proj.weight]), packed.in_proj_weight)
    for a, b in zip(before, model.encode_dense(images)):
        assert torch.allclose(a, b, atol=1e-6)


def _tower_trainable(model):
    return sorted(n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("aggregator."))


def _qv(prefix, layers):
    return [f"{prefix}.{i}.self_attn.{p}_proj.weight" for i in range(layers) for p in "qv"]


QV_VISION = (_qv("backbone.fgclip2.vision_model.encoder.layers", 2)
             + [f"backbone.fgclip2.dense_feature_head.attention.{p}_proj.weight" for p in "qv"])
QV_TEXT = _qv("text_tower.text_model.encoder.layers", 2)
POSITIONS = ["backbone.fgclip2.vision_model.embeddings.position_embedding.weight",
             "text_tower.text_model.embeddings.position_embedding.weight"]


def test_qv_finetuning_trains_exactly_q_v_and_position_tables_and_gives_them_gradients(tiny_dir):
    model = build(tiny_dir, **{"model.finetune_position_embeddings": True})
    assert model.finetune == "attention"
    assert _tower_trainable(model) == sorted(QV_VISION + QV_TEXT + POSITIONS)
    model.train()
    gen = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 15, (64, 64), generator=gen)
    loss = model.loss(torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1, [sample(64, 64, gt), sample(48, 56, gt)])
    loss["loss_seg"].backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        else:
            assert p.grad is None, name
    assert all("k_proj" not in n and "out_proj" not in n for n in _tower_trainable(model))

    default = build(tiny_dir)  # CAT-Seg's code: q/v weights only, biases and position tables frozen
    assert _tower_trainable(default) == sorted(QV_VISION + QV_TEXT)
    none = build(tiny_dir, **{"model.finetune": "none"})
    assert _tower_trainable(none) == [] and none.text_tower is None
    full = build(tiny_dir, **{"model.finetune": "full", "model.finetune_position_embeddings": True})
    blocks = [n for n, _ in full.named_parameters()
              if ".encoder.layers." in n or (n.startswith("backbone.fgclip2.dense_feature_head.") and "probe" not in n)]
    assert _tower_trainable(full) == sorted(blocks + POSITIONS)
    with pytest.raises(ValueError, match="contradicts finetune='attention'"):
        build(tiny_dir, **{"model.backbone.frozen": True})


def test_text_tower_embeddings_equal_the_text_classifiers(tiny_dir):
    """Fine-tuned runs encode class texts in the forward; before any step they are exactly the
    frozen model's (TextClassifier) embeddings: synonyms averaged, Chinese names bare."""
    vocab = (["background", ["circle", "round shape"], "square", "三角形"], ())
    tuned, frozen = build(tiny_dir, vocab), build(tiny_dir, vocab, **{"model.finetune": "none"})
    assert tuned.class_embeds.shape == (4, 1, 64)
    assert torch.allclose(tuned.class_embeds, frozen.class_embeds, atol=1e-5)
    tuned.train()
    live = tuned.class_text_embeddings()
    assert live.requires_grad and torch.allclose(live, frozen.class_embeds, atol=1e-5)
    assert torch.allclose(tuned.class_text_embeddings(torch.tensor([3, 1])), live[[3, 1]], atol=1e-6)


def test_eval_text_cache_follows_the_weights(tiny_dir):
    model = build(tiny_dir)
    cached = model.class_text_embeddings().clone()
    model.train()
    model.class_text_embeddings()  # a training forward: the step that follows changes the weights
    with torch.no_grad():
        model.text_tower.text_model.encoder.layers[0].self_attn.v_proj.weight.mul_(1.5)
    model.eval()
    fresh = model.class_text_embeddings()
    assert not torch.allclose(fresh, cached, atol=1e-4)
    assert torch.allclose(fresh, model.embed_classes(model.classes), atol=1e-6)


# ------------------------------------------------------------------------------ model
def test_whole_model_is_class_permutation_equivariant(tiny_dir):
    classes = list(META["classes"])
    perm = torch.randperm(len(classes), generator=torch.Generator().manual_seed(0))
    model = build(tiny_dir)
    x = torch.rand(2, 3, 96, 80, generator=torch.Generator().manual_seed(1)) * 2 - 1
    shapes = [(96, 80), (70, 64)]
    with torch.no_grad():
        out = model.logits(x, shapes)
        model.set_vocabulary([classes[i] for i in perm])
        permuted = model.logits(x, shapes)
    assert torch.allclose(permuted, out[:, perm], atol=1e-5)


def test_guidance_taps_reach_the_right_upsampling_steps(tiny_dir):
    """The earlier block (out_indices[0]) guides the first x2 step, the later block the second."""
    model = build(tiny_dir)
    agg = model.aggregator
    seen = {}
    hooks = [agg.up1.register_forward_hook(lambda m, i, o: seen.__setitem__("up1", i[1])),
             agg.up2.register_forward_hook(lambda m, i, o: seen.__setitem__("up2", i[1]))]
    view = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        model.view_logits(view)
        blocks = model.backbone.fgclip2.vision_features([view[0]], (0, 1), with_global=False).intermediates
        early, late = (b[0][None] for b in blocks)
        expected = {"up1": agg.guidance_proj[0](agg.guidance_up[0](early)),
                    "up2": agg.guidance_proj[1](agg.guidance_up[1](late))}
        swapped = agg.guidance_proj[0](agg.guidance_up[0](late))
    for h in hooks:
        h.remove()
    assert model.backbone.out_indices == (0, 1)
    assert seen["up1"].shape[-2:] == (16, 16) and seen["up2"].shape[-2:] == (32, 32)
    for step in ("up1", "up2"):
        assert torch.allclose(seen[step], expected[step], atol=1e-5), step
    assert not torch.allclose(seen["up1"], swapped, atol=1e-3)  # the check tells the taps apart
    with pytest.raises(ValueError, match="two increasing blocks"):
        build(tiny_dir, **{"model.backbone.out_indices": [1, 0]})


def test_bce_loss_matches_a_hand_computation(tiny_dir):
    """Seen classes only; batch padding never counts; novel-labelled pixels never count; ignored
    pixels are negatives of every class (CAT-Seg) or left out."""
    model = build(tiny_dir, (["bg", "cat", "dog", "cow"], ("dog",)))
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, generator=gen)           # seen: bg, cat, cow
    labels = torch.tensor([[[0, 1, 2, 3, 255]] * 4, [[3, 3, 1, 0, 255]] * 4])
    shapes = [(4, 5), (3, 4)]                                 # image 1: row 3 and column 4 are padding
    seen_of = {0: 0, 1: 1, 3: 2}

    def by_hand(ignore_as_negative):
        terms = []
        for b in range(2):
            for y in range(4):
                for x in range(5):
                    lab = int(labels[b, y, x])
                    if y >= shapes[b][0] or x >= shapes[b][1] or lab == 2 or (lab == 255 and not ignore_as_negative):
                        continue
                    for k in range(3):
                        z = float(logits[b, k, y, x])
                        t = 1.0 if seen_of.get(lab) == k else 0.0
                        s = 1 / (1 + math.exp(-z))
                        terms.append(-(t * math.log(s) + (1 - t) * math.log(1 - s)))
        return sum(terms) / len(terms)

    novel = model.novel_mask
    for flag in (True, False):
        model.ignore_as_negative = flag
        assert model.bce_loss(logits, labels, shapes, novel).item() == pytest.approx(by_hand(flag), rel=1e-5)

    # model.loss = that BCE on the logits of the seen classes only (the novel class is out of the forward)
    model.ignore_as_negative = True
    model.train()
    x = torch.rand(1, 3, 64, 64, generator=gen) * 2 - 1
    gt = torch.randint(0, 4, (64, 64), generator=gen)
    counts = []
    hook = model.aggregator.register_forward_hook(lambda m, i, o: counts.append(i[1].shape[0]))
    loss = model.loss(x, [sample(64, 64, gt)])["loss_seg"]
    hook.remove()
    seen_text = model.class_text_embeddings(torch.tensor([0, 1, 3]))
    expected = model.bce_loss(model.logits(x, [(64, 64)], seen_text), gt[None], [(64, 64)], novel)
    assert counts == [3] and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    bad = gt.clone()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match=r"a\.jpg: label values \[7\]"):
        model.loss(x, [sample(64, 64, bad, "a.jpg")])


def test_sliding_inference_equals_whole_inference_on_an_image_of_one_window(tiny_dir):
    model = build(tiny_dir)
    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        whole = model.image_probs(image, (128, 128))
        for global_view in (True, False):
            model.test_cfg = dict(mode="slide", crop_size=(128, 128), stride=(85, 85), global_view=global_view,
                                  pooling_size=(1, 1))
            assert torch.allclose(model.image_probs(image, (128, 128)), whole, atol=1e-5)
        # two overlapping windows + the global view: window average, then mean with the global view
        # (CAT-Seg: each view's sigmoid at the view's resolution, then resized to the image)
        wide = torch.rand(3, 128, 192, generator=torch.Generator().manual_seed(5)) * 2 - 1
        model.test_cfg = dict(mode="slide", crop_size=(128, 128), stride=(64, 64), global_view=True,
                              pooling_size=(1, 1))
        out = model.image_probs(wide, (128, 192))
        model.test_cfg = dict(mode="whole", pooling_size=(1, 1))
        a, b = model.image_probs(wide[:, :, :128], (128, 128)), model.image_probs(wide[:, :, 64:], (128, 128))
        view = F.interpolate(wide[None], size=(128, 128), mode="bilinear", align_corners=False)
        g = F.interpolate(model.image_probs(view[0], (128, 128))[None], size=(128, 192), mode="bilinear",
                          align_corners=False)[0]
    assert torch.allclose(out[:, :, :64], (a[:, :, :64] + g[:, :, :64]) / 2, atol=1e-5)
    assert torch.allclose(out[:, :, 64:128], ((a[:, :, 64:] + b[:, :, :64]) / 2 + g[:, :, 64:128]) / 2, atol=1e-5)
    assert torch.allclose(out[:, :, 128:], (b[:, :, 64:] + g[:, :, 128:]) / 2, atol=1e-5)


def test_predict_fills_seg_logits_and_labels_at_the_original_size(tiny_dir):
    model = build(tiny_dir)
    x = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        out = model.predict(x, [sample(64, 80, ori=(32, 40))])[0]
        probs = F.interpolate(model.image_probs(x[0], (64, 80))[None], size=(32, 40), mode="bilinear",
                              align_corners=False)[0]
    assert out.seg_logits.data.shape == (15, 32, 40)
    assert torch.allclose(out.seg_logits.data.sigmoid(), probs, atol=1e-5)
    assert torch.equal(out.pred_sem_seg.sem_seg[0], probs.argmax(0))
    assert out.pred_sem_seg.metainfo["ignore_index"] == 255


# ------------------------------------------------------------------------------ configs & runner
@pytest.mark.parametrize("preset,taps", [("base", [3, 7]), ("large", [7, 15]), ("so400m", [8, 17])])
def test_recipe_configs_carry_cat_segs_values(preset, taps):
    cfg = Config.fromfile(str(ROOT / "configs" / "ovseg" / f"cat-seg_fgclip2-{preset}_coco-stuff-171.py"))
    m = cfg.model
    assert m.type == "FGCLIP2CATSeg" and m.finetune == "attention" and list(m.backbone.out_indices) == taps
    assert tuple(default_guidance_layers(FGCLIP2Config.preset(preset).vision.num_hidden_layers)) == tuple(taps)
    assert tuple(m.clip_resolution) == (384, 384) and m.aggregator.num_layers == 2 and m.aggregator.window_size == 12
    assert m.test_cfg.mode == "slide" and tuple(m.test_cfg.stride) == (256, 256) and m.test_cfg.global_view
    opt = cfg.optim_wrapper
    assert opt.optimizer.lr == 2e-4 and opt.optimizer.weight_decay == 1e-4 and opt.clip_grad.max_norm == 0.01
    assert opt.paramwise_cfg.custom_keys.backbone.lr_mult == 0.01 == opt.paramwise_cfg.custom_keys.text_tower.lr_mult
    assert cfg.param_scheduler[0].type == "CosineAnnealingLR" and cfg.train_cfg.max_iters == 80000
    assert cfg.train_dataloader.batch_size == 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fgclip2_det.datasets.synthetic import generate_world

    return generate_world(tmp_path_factory.mktemp("catseg_world"), 12, seed=3, workers=1)


def test_a_few_training_iterations_on_the_synthetic_world(tiny_dir, world, tmp_path):
    """Runner, config as shipped: the towers' q/v move at 0.01x the lr, their k stays put."""
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(CONFIG))
    cfg.merge_from_dict({"model.backbone.checkpoint": str(tiny_dir),
                         "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
                         "model.text_classifier.progress": False, "train_cfg.max_iters": 3,
                         "train_cfg.val_interval": 1000, "train_dataloader.batch_size": 2,
                         "default_hooks.checkpoint.interval": 3, "default_hooks.logger.interval": 1,
                         "param_scheduler.0.T_max": 3, "param_scheduler.0.end": 3})
    for split in ("train", "val", "test"):
        cfg.merge_from_dict({f"{split}_dataloader.dataset.data_root": f"{world}/",
                             f"{split}_dataloader.num_workers": 0})
    cfg.work_dir, cfg.log_level = str(tmp_path), "WARNING"
    with in_mmdet_scope():
        runner = Runner.from_cfg(cfg)
    model = runner.model
    tower = model.backbone.fgclip2.vision_model.encoder.layers[0].self_attn
    before = {"q": tower.q_proj.weight.clone(), "k": tower.k_proj.weight.clone(),
              "text_v": model.text_tower.text_model.encoder.layers[1].self_attn.v_proj.weight.clone(),
              "head": model.aggregator.head.weight.clone()}
    runner.train()
    groups = {id(p): g for g in runner.optim_wrapper.optimizer.param_groups for p in g["params"]}
    assert groups[id(tower.q_proj.weight)]["initial_lr"] == pytest.approx(1e-5)
    assert groups[id(model.aggregator.head.weight)]["initial_lr"] == pytest.approx(1e-3)
    assert not torch.equal(tower.q_proj.weight, before["q"]) and torch.equal(tower.k_proj.weight, before["k"])
    assert not torch.equal(model.text_tower.text_model.encoder.layers[1].self_attn.v_proj.weight, before["text_v"])
    assert not torch.equal(model.aggregator.head.weight, before["head"])
    assert (tmp_path / "iter_3.pth").is_file()
    metrics = runner.test()
    assert "mIoU_unseen" in metrics and math.isfinite(metrics["mIoU"])


@pytest.mark.slow
def test_memory_probe_measures_a_crop_in_a_fresh_process(tiny_dir):
    from fgclip2_det.seg.cat_seg.memory import cat_seg_memory

    kw = dict(num_classes=12, crop=128, aggregator=TINY_AGGREGATOR)
    infer = cat_seg_memory(tiny_dir, class_chunk=5, **kw)
    train = cat_seg_memory(tiny_dir, train=True, with_cp=True, class_chunk=5, **kw)
    for r in (infer, train):
        assert r["fits"], r.get("error")
        assert r["peak_rss_gib"] >= r["baseline_gib"] > 0 and r["step_peak_gib"] >= 0
    assert train["trainable_params_m"] > 0


def test_inference_api_runs_cat_seg_over_a_typed_vocabulary(tiny_dir):
    """What the web demo and ``inference_model`` users do: the CAT-Seg config, a vocabulary typed at
    run time, an RGB array in; labels index that vocabulary at the image's own size, and equal the
    argmax of the model's own probabilities for the same vocabulary."""
    from fgclip2_det.apis import inference_model, init_model

    model = init_model(str(CONFIG), cfg_options={"model.backbone.checkpoint": str(tiny_dir),
                                                 "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
                                                 "model.text_classifier.progress": False})
    image = (np.random.default_rng(0).random((96, 120, 3)) * 255).astype(np.uint8)
    out = inference_model(model, image, ["circle", "square", ["star", "星"]])
    assert model.classes == ["circle", "square", ["star", "星"]]
    labels = out.pred_sem_seg.sem_seg[0]
    assert labels.shape == (96, 120) and int(labels.max()) < 3
    assert torch.equal(labels, out.seg_logits.data.argmax(0))
