"""Guided (shifted-)window attention: CAT-Seg's spatial aggregation of the cost volume.

CAT-Seg (Cho et al., "CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic Segmentation", CVPR 2024,
§3.2; cvlab-kaist/CAT-Seg, cat_seg/modeling/transformer/model.py) aggregates every class's cost map
on its own with a pair of Swin Transformer blocks (Liu et al., ICCV 2021): attention inside
non-overlapping windows, then inside windows shifted by half a window. Two things differ from a
plain Swin block, and they are why timm's ``SwinTransformerBlock`` does not fit (its queries, keys
and values are one projection of the block input, with a relative-position bias):

* **appearance guidance**: queries and keys are computed from the cost features *concatenated* with
  a projection of the image features (the same for every class); values from the cost features
  only;
* no relative-position bias.

Layout: ``x`` is (B, K, H, W, C), K classes that never mix here (class chunks give the same result);
the guidance is (B, H, W, G), shared by the K classes. ``Linear(concat(x, g))`` is computed as
``Linear_x(x) + Linear_g(g)`` so the guidance is projected once per image instead of once per class.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Score added between tokens of different regions inside a shifted window (Swin's value).
SHIFT_MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, H, W, C) -> (N, nH * nW, window * window, C), windows row-major, tokens row-major."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, (h // window) * (w // window), window * window, c)


def window_merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (N, nH * nW, window * window, C) -> (N, H, W, C)."""
    n, c = windows.shape[0], windows.shape[-1]
    x = windows.reshape(n, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


def effective_window(h: int, w: int, window: int, shift: int) -> tuple[int, int]:
    """CAT-Seg's rule: a grid no larger than the window is one window, unshifted. Otherwise both sides
    must be multiples of the window (a clear error instead of silently padding)."""
    if min(h, w) <= window:
        window, shift = min(h, w), 0
    if h % window or w % window:
        raise ValueError(f"spatial aggregation: the {h}x{w} feature grid is not a multiple of the "
                         f"{window}-token window; choose clip_resolution / window_size so that it is")
    return window, shift


def shifted_window_mask(h: int, w: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(nH * nW, L, L) additive mask of the shifted windows: after the cyclic shift, a window at the
    border holds tokens from up to four regions of the original image, which must not attend to each
    other (0 within a region, :data:`SHIFT_MASK_VALUE` across)."""
    region = torch.zeros(1, h, w, 1, device=device)
    label = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            region[:, hs, ws] = label
            label += 1
    labels = window_partition(region, window)[0, ..., 0]  # (nW, L)
    same = labels[:, :, None] == labels[:, None, :]
    return torch.where(same, 0.0, SHIFT_MASK_VALUE)


class GuidedWindowAttention(nn.Module):
    """Multi-head attention inside windows; q and k from [x, guidance], v from x; output projection."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden dim {dim} is not divisible by {num_heads} heads")
        self.dim, self.guidance_dim, self.num_heads = dim, guidance_dim, num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _guided(self, layer: nn.Linear, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``layer(cat([x, g], -1))`` with ``g`` broadcast over the class axis, without the cat."""
        out = F.linear(x, layer.weight[:, :self.dim], layer.bias)
        if self.guidance_dim:
            out = out + F.linear(g, layer.weight[:, self.dim:])
        return out

    def forward(self, x: torch.Tensor, g: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, K, nW, L, C); g (B, 1, nW, L, G) or None; mask (nW, L, L) or None -> (B, K, nW, L, C)."""
        heads = self.num_heads

        def split(t):  # (..., L, C) -> (..., heads, L, C / heads)
            return t.reshape(*t.shape[:-1], heads, -1).transpose(-2, -3)

        q, k = split(self._guided(self.q, x, g)), split(self._guided(self.k, x, g))
        v = split(self.v(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None].to(q.dtype))
        return self.proj(out.transpose(-2, -3).flatten(-2))


class GuidedSwinBlock(nn.Module):
    """Pre-norm Swin block: ``x + WindowAttention(LN(x), guidance)``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, window_size: int, shift: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.window_size, self.shift = int(window_size), int(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GuidedWindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._masks: dict = {}

    def _mask(self, h: int, w: int, window: int, shift: int, device) -> torch.Tensor | None:
        if not shift:
            return None
        key = (h, w, window, shift, str(device))
        if key not in self._masks:
            self._masks[key] = shifted_window_mask(h, w, window, shift, device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B, K, H, W, C); guidance (B, H, W, G) (already normalised) or None."""
        b, k, h, w, c = x.shape
        window, shift = effective_window(h, w, self.window_size, self.shift)
        y = self.norm1(x).reshape(b * k, h, w, c)
        g = guidance
        if shift:
            y = torch.roll(y, (-shift, -shift), dims=(1, 2))
            g = None if g is None else torch.roll(g, (-shift, -shift), dims=(1, 2))
        yw = window_partition(y, window)
        yw = yw.reshape(b, k, *yw.shape[1:])
        gw = None if g is None else window_partition(g, window)[:, None]
        out = self.attn(yw, gw, self._mask(h, w, window, shift, x.device))
        out = window_merge(out.reshape(b * k, *out.shape[2:]), window, h, w)
        if shift:
            out = torch.roll(out, (shift, shift), dims=(1, 2))
        x = x + out.reshape(b, k, h, w, c)
        return x + self.mlp(self.norm2(x))


class GuidedSwinPair(nn.Module):
    """One spatial-aggregation stage: a window block then a shifted-window block (shift = window // 2),
    both guided by the same layer-normalised appearance guidance."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, window_size: int):
        super().__init__()
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim else None
        self.block1 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, 0)
        self.block2 = GuidedSwinBlock(dim, guidance_dim, num_heads, window_size, window_size // 2)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        g = None if self.guidance_norm is None or guidance is None else self.guidance_norm(guidance)
        return self.block2(self.block1(x, g), g)
