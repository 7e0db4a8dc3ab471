"""The GPU fast path of packed attention (model/layers.py): which kernel runs, what it is given, and
that the CPU path is the per-sequence SDPA loop, unchanged. No GPU here: the CUDA check and the
kernel are replaced, so dispatch and plumbing are tested, not the kernel's speed or numerics."""
from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from fgclip2_det.model import layers

LENGTHS = [5, 9, 3]
HEADS, DIM = 4, 32


def _qkv(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(sum(LENGTHS), DIM, generator=gen).to(dtype) for _ in range(3)]


def per_sequence(q, k, v, lengths, heads):
    """The reference: one SDPA call per sequence."""
    outs = []
    for qi, ki, vi in zip(q.split(lengths), k.split(lengths), v.split(lengths)):
        split = [t.view(1, -1, heads, DIM // heads).transpose(1, 2) for t in (qi, ki, vi)]
        outs.append(F.scaled_dot_product_attention(*split).transpose(1, 2).reshape(-1, DIM))
    return torch.cat(outs)


class FakeVarlen:
    """Stands in for ``varlen_attn``: records its arguments and computes varlen attention from the
    cumulative offsets, so wrong offsets or layouts change the result."""

    def __init__(self):
        self.calls = []

    def __call__(self, q, k, v, cu_q, cu_k, max_q, max_k):
        self.calls.append(dict(shapes=(q.shape, k.shape, v.shape), cu_q=cu_q.clone(), cu_k=cu_k.clone(),
                               max_q=max_q, max_k=max_k))
        out = torch.empty_like(q)
        for i in range(len(cu_q) - 1):
            a, b, c, d = int(cu_q[i]), int(cu_q[i + 1]), int(cu_k[i]), int(cu_k[i + 1])
            heads = [t.transpose(0, 1)[None] for t in (q[a:b], k[c:d], v[c:d])]
            out[a:b] = F.scaled_dot_product_attention(*heads)[0].transpose(0, 1)
        return out


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeVarlen()
    monkeypatch.setattr(layers, "_varlen_attn", fake)
    monkeypatch.setattr(layers, "_on_cuda", lambda t: True)
    return fake


def test_installed_kernel_has_the_signature_the_dispatch_uses():
    """torch 2.13's varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, ...)."""
    from torch.nn.attention.varlen import varlen_attn

    assert layers._varlen_attn is varlen_attn
    params = list(inspect.signature(varlen_attn).parameters)
    assert params[:7] == ["query", "key", "value", "cu_seq_q", "cu_seq_k", "max_q", "max_k"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_lengths_on_cuda_take_one_varlen_call(fake_cuda, dtype):
    q, k, v = _qkv(dtype)
    out = layers.varlen_attention(q, k, v, HEADS, LENGTHS, LENGTHS)
    assert len(fake_cuda.calls) == 1
    call = fake_cuda.calls[0]
    assert call["cu_q"].dtype == torch.int32 and call["cu_q"].tolist() == [0, 5, 14, 17]
    assert call["cu_k"].tolist() == [0, 5, 14, 17] and call["max_q"] == call["max_k"] == 9
    assert call["shapes"][0] == (17, HEADS, DIM // HEADS)
    ref = per_sequence(q.float(), k.float(), v.float(), LENGTHS, HEADS)
    assert out.shape == (17, DIM) and out.dtype == dtype
    assert torch.allclose(out.float(), ref, atol=2e-2)


def test_query_and_key_lengths_may_differ(fake_cuda):
    """The MAP head: one probe query per image over that image's tokens."""
    q, k, v = _qkv(torch.bfloat16)
    out = layers.varlen_attention(q[:3], k, v, HEADS, [1, 1, 1], LENGTHS)
    assert fake_cuda.calls[0]["cu_q"].tolist() == [0, 1, 2, 3] and fake_cuda.calls[0]["max_q"] == 1
    assert out.shape == (3, DIM)


def test_float32_and_uniform_lengths_do_not_take_the_kernel(fake_cuda):
    q, k, v = _qkv(torch.float32)
    layers.varlen_attention(q, k, v, HEADS, LENGTHS, LENGTHS)  # fp32: not the kernel's dtype
    q16 = q[:12].to(torch.bfloat16)
    layers.varlen_attention(q16, q16, q16, HEADS, [6, 6], [6, 6])  # one batched SDPA call already
    assert fake_cuda.calls == []


def test_cpu_takes_the_per_sequence_loop_unchanged(monkeypatch):
    """On CPU (even in bf16) the kernel is never called and the result is the loop's, bit for bit."""
    fake = FakeVarlen()
    monkeypatch.setattr(layers, "_varlen_attn", fake)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = _qkv(dtype, seed=1)
        out = layers.varlen_attention(q, k, v, HEADS, LENGTHS, LENGTHS)
        assert torch.equal(out, per_sequence(q, k, v, LENGTHS, HEADS))
    assert fake.calls == []
    assert not layers.varlen_kernel_applies(torch.zeros(2, 2, dtype=torch.bfloat16))


def test_missing_kernel_falls_back(monkeypatch):
    """A torch without varlen_attn: the loop, even on (claimed) CUDA."""
    monkeypatch.setattr(layers, "_varlen_attn", None)
    monkeypatch.setattr(layers, "_on_cuda", lambda t: True)
    q, k, v = _qkv(torch.bfloat16)
    assert not layers.varlen_kernel_applies(q)
    assert torch.equal(layers.varlen_attention(q, k, v, HEADS, LENGTHS, LENGTHS), per_sequence(q, k, v, LENGTHS, HEADS))


def test_vision_tower_through_the_kernel_matches_the_loop(fake_cuda, tiny_dir, make_images):
    """The whole vision tower in bf16 on a mixed batch: the varlen route (fake kernel with the real
    semantics) equals the per-image route within bf16 tolerance, and the route was taken."""
    from fgclip2_det.model import FGCLIP2

    model = FGCLIP2.from_pretrained(tiny_dir, dtype=torch.bfloat16)
    images = [img.to(torch.bfloat16) for img in make_images([(32, 48), (64, 32), (16, 16)])]
    with torch.no_grad():
        fast = model.encode_image(images)
        calls = len(fake_cuda.calls)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(layers, "_on_cuda", lambda t: False)
            slow = model.encode_image(images)
    assert calls > 0
    assert torch.allclose(fast.float(), slow.float(), atol=3e-2)
