"""Transformer pieces shared by the FG-CLIP 2 towers, on packed variable-length token batches.

A batch of sequences is stored *packed*: one (T, D) tensor holding every real token, plus the list
of sequence lengths. Linear layers and norms then never touch padding (a NaFlex batch can be half
padding), and attention runs per sequence, so an image's result cannot depend on its batch-mates.
Module and parameter names follow the official checkpoint layout (``Fgclip2Model`` in MOD,
docs/official_code.md).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

try:  # FlashAttention varlen (CUDA only), torch >= 2.10: docs/export.md "GPU fast path"
    from torch.nn.attention.varlen import varlen_attn as _varlen_attn
except ImportError:  # older torch: the per-sequence loop below
    _varlen_attn = None

#: Dtypes the FlashAttention varlen kernel takes.
VARLEN_DTYPES = (torch.bfloat16, torch.float16)

ACTIVATIONS = {
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
}


def get_activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unsupported hidden_act {name!r}; supported: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _on_cuda(t: torch.Tensor) -> bool:
    return t.is_cuda


def varlen_kernel_applies(q: torch.Tensor) -> bool:
    """Whether mixed-length attention runs in one FlashAttention varlen call: the kernel is
    importable, the tensors are on CUDA and half precision (bf16 / fp16), the kernel's inputs."""
    return _varlen_attn is not None and _on_cuda(q) and q.dtype in VARLEN_DTYPES


def _cumulative(lengths: list[int], device) -> torch.Tensor:
    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    return torch.tensor(offsets, dtype=torch.int32, device=device)


def varlen_kernel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int,
                            q_lengths: list[int], k_lengths: list[int]) -> torch.Tensor:
    """Packed attention in one ``torch.nn.attention.varlen.varlen_attn`` call: (T, H, head_dim)
    inputs with int32 cumulative sequence offsets, so a mixed-size NaFlex batch is one kernel launch
    instead of one SDPA call per image (no padding, no per-image loop)."""
    dim = q.shape[-1]
    head_dim = dim // num_heads
    qh, kh, vh = (t.reshape(t.shape[0], num_heads, head_dim).contiguous() for t in (q, k, v))
    out = _varlen_attn(qh, kh, vh, _cumulative(q_lengths, q.device), _cumulative(k_lengths, q.device),
                       max(q_lengths), max(k_lengths))
    return out.reshape(q.shape[0], dim)


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int,
                     q_lengths: list[int], k_lengths: list[int],
                     key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention of each packed query sequence over its own key sequence.

    q: (sum(q_lengths), D); k, v: (sum(k_lengths), D). Equal-length batches take one batched
    SDPA call; mixed lengths take one FlashAttention varlen call on CUDA in bf16 / fp16
    (:func:`varlen_kernel_applies`) and one SDPA call per sequence otherwise. ``key_padding_mask``
    (B, Lk) bool, True = attend, is only for the uniform case (padded text with an explicit mask).
    """
    dim = q.shape[-1]
    head_dim = dim // num_heads
    if len(set(q_lengths)) == 1 and len(set(k_lengths)) == 1:
        b, lq, lk = len(q_lengths), q_lengths[0], k_lengths[0]
        qh = q.view(b, lq, num_heads, head_dim).transpose(1, 2)
        kh = k.view(b, lk, num_heads, head_dim).transpose(1, 2)
        vh = v.view(b, lk, num_heads, head_dim).transpose(1, 2)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask)
        return out.transpose(1, 2).reshape(b * lq, dim)
    if key_padding_mask is not None:
        raise ValueError("key_padding_mask is only supported for equal-length sequences")
    if varlen_kernel_applies(q):
        return varlen_kernel_attention(q, k, v, num_heads, q_lengths, k_lengths)
    outs = []
    for qi, ki, vi in zip(q.split(q_lengths), k.split(k_lengths), v.split(k_lengths)):
        qh = qi.view(1, -1, num_heads, head_dim).transpose(1, 2)
        kh = ki.view(1, -1, num_heads, head_dim).transpose(1, 2)
        vh = vi.view(1, -1, num_heads, head_dim).transpose(1, 2)
        outs.append(F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(-1, dim))
    return torch.cat(outs)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (SigLIP naming)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, lengths: list[int],
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = varlen_attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.num_heads,
                               lengths, lengths, key_padding_mask)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    """Pre-LN block: x + Attn(LN1(x)), then x + MLP(LN2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, act: str, eps: float):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = SelfAttention(dim, num_heads)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_dim, act)

    def forward(self, x: torch.Tensor, lengths: list[int],
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), lengths, key_padding_mask)
        return x + self.mlp(self.layer_norm2(x))


def take_indices(indices: int | Sequence[int], depth: int) -> tuple[int, ...]:
    """Encoder-block indices as timm's ``feature_take_indices``: an int n means the last n blocks;
    a sequence lists blocks, negatives counted from the end. Out of range raises, naming the depth."""
    if isinstance(indices, int):
        if not 0 < indices <= depth:
            raise ValueError(f"cannot take the last {indices} of the encoder's {depth} blocks")
        return tuple(range(depth - indices, depth))
    resolved = []
    for i in indices:
        j = int(i) + depth if int(i) < 0 else int(i)
        if not 0 <= j < depth:
            raise ValueError(f"out_indices entry {i} is outside the encoder's {depth} blocks")
        resolved.append(j)
    return tuple(resolved)


class Encoder(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, mlp_dim: int, act: str, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, num_heads, mlp_dim, act, eps) for _ in range(depth))
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, lengths: list[int], key_padding_mask: torch.Tensor | None = None,
                out_indices: int | Sequence[int] = ()) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Runs every block; returns the last output and the outputs of blocks ``out_indices``
        (:func:`take_indices`), in the order asked for."""
        wanted = take_indices(out_indices, len(self.layers))
        taken = {}
        for i, layer in enumerate(self.layers):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, lengths, key_padding_mask, use_reentrant=False)
            else:
                x = layer(x, lengths, key_padding_mask)
            if i in wanted:
                taken[i] = x
        return x, [taken[i] for i in wanted]


class PackedInProjAttention(nn.Module):
    """``nn.MultiheadAttention``'s parameters (packed ``in_proj_weight`` = [Wq; Wk; Wv]) computed
    with SDPA on packed sequences, so the official checkpoint keys load unchanged."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor, q_lengths: list[int],
                k_lengths: list[int]) -> torch.Tensor:
        wq, wkv = self.in_proj_weight.split([query.shape[-1], 2 * query.shape[-1]])
        bq, bkv = self.in_proj_bias.split([query.shape[-1], 2 * query.shape[-1]])
        q = F.linear(query, wq, bq)
        k, v = F.linear(tokens, wkv, bkv).chunk(2, dim=-1)
        return self.out_proj(varlen_attention(q, k, v, self.num_heads, q_lengths, k_lengths))


class AttentionPoolingHead(nn.Module):
    """SigLIP's MAP head: attention from a query, then ``h + MLP(LN(h))`` (no residual around the
    attention). ``pool`` uses the learned probe (global embedding); ``dense`` uses every token as
    its own query (FG-CLIP 2's ``dense_feature_head``, official ``get_dense_feature``,
    FG2:L259-279)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, act: str, eps: float):
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, dim))
        self.attention = PackedInProjAttention(dim, num_heads)
        self.layernorm = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_dim, act)

    def _finish(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.layernorm(h))

    def pool(self, tokens: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """(sum(lengths), D) packed tokens -> (B, D), one probe query per sequence."""
        probe = self.probe.reshape(1, -1).expand(len(lengths), -1)
        return self._finish(self.attention(probe, tokens, [1] * len(lengths), lengths))

    def dense(self, tokens: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """(sum(lengths), D) -> (sum(lengths), D): each token attends over its own sequence."""
        return self._finish(self.attention(tokens, tokens, lengths, lengths))
