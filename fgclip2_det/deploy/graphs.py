"""Export-friendly views of FG-CLIP 2: modules that share the model's parameters and compute the same
functions with tensor operations only, so that one traced graph serves every input size.

The PyTorch model keeps per-image Python lists (grids, sequence lengths) and calls mmcv's RoIAlign;
neither survives tracing with dynamic shapes. Here:

* a packed NaFlex batch is ``patches`` (T, p*p*C) + ``grids`` (B, 2) int64; per-token image index,
  row and column are derived from ``grids`` inside the graph, and attention is one SDPA over the pack
  with a block-diagonal mask (an image attends only to itself, as the per-image loop of
  ``model/layers.py`` does);
* the position table resize (``VisionEmbeddings.resized_positions``: bilinear, antialias,
  align_corners=False) is written as per-token separable triangle-filter weights, the formula of
  PyTorch's antialiased bilinear kernel, so the grid size is data, not a traced constant;
* RoIAlign 1x1 (aligned, adaptive sampling, mmcv's CPU kernel) is written as separable per-box row
  and column weights over the map: the average of bilinear samples is (row weights) x map x (column
  weights), with the sample count bounded by the map size rather than by box values.

Docs: docs/export.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.fgclip2 import FGCLIP2
from ..model.layers import AttentionPoolingHead, Encoder, EncoderLayer, PackedInProjAttention
from ..model.text import TEXT_KINDS


# ------------------------------------------------------------------------------ packed indices
def token_layout(grids: torch.Tensor, num_tokens: int | torch.SymInt | torch.Tensor):
    """Per packed token: image index, row, column (int64, each (T,)). ``grids`` (B, 2) = (h, w)."""
    lengths = grids[:, 0] * grids[:, 1]
    ends = torch.cumsum(lengths, 0)
    starts = ends - lengths
    t = torch.arange(num_tokens, device=grids.device)
    image = (t[:, None] >= ends[None, :]).sum(1)
    local = t - starts[image]
    width = grids[image, 1]
    return image, torch.div(local, width, rounding_mode="floor"), torch.remainder(local, width)


def antialias_weights(index: torch.Tensor, out_size: torch.Tensor, in_size: int) -> torch.Tensor:
    """(N,) output positions on grids of (N,) sizes -> (N, in_size) weights of PyTorch's antialiased
    bilinear resize (align_corners=False): triangle filter centred at scale * (i + 0.5), widened by
    the scale when shrinking, normalised per row. Equal to ``F.interpolate(..., antialias=True)``'s
    weights (checked in tests/deploy/test_onnx_export.py)."""
    scale = in_size / out_size.to(torch.float32)
    center = scale * (index.to(torch.float32) + 0.5)
    invscale = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    j = torch.arange(in_size, device=index.device, dtype=torch.float32)
    w = (1.0 - ((j[None, :] + 0.5 - center[:, None]) * invscale[:, None]).abs()).clamp_min(0.0)
    return w / w.sum(1, keepdim=True)


def block_mask(query_image: torch.Tensor, key_image: torch.Tensor) -> torch.Tensor:
    """(1, 1, Lq, Lk) bool: query i may attend key j when they belong to the same image."""
    return (query_image[:, None] == key_image[None, :])[None, None]


# ---------------------------------------------------------------------------------- attention
def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.reshape(b, n, num_heads, d // num_heads).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, n, hd = x.shape
    return x.transpose(1, 2).reshape(b, n, h * hd)


def layer_forward(layer: EncoderLayer, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``EncoderLayer.forward`` on a (B, L, D) tensor with an SDPA boolean mask (True = attend)."""
    attn = layer.self_attn
    h = layer.layer_norm1(x)
    q, k, v = (_heads(p(h), attn.num_heads) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    x = x + attn.out_proj(_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask)))
    return x + layer.mlp(layer.layer_norm2(x))


def encoder_forward(encoder: Encoder, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    for layer in encoder.layers:
        x = layer_forward(layer, x, mask)
    return x


def in_proj_attention(attn: PackedInProjAttention, query: torch.Tensor, tokens: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
    """``PackedInProjAttention.forward`` on (1, Lq, D) queries over (1, Lk, D) tokens with a mask."""
    dim = query.shape[-1]
    wq, wkv = attn.in_proj_weight.split([dim, 2 * dim])
    bq, bkv = attn.in_proj_bias.split([dim, 2 * dim])
    k, v = F.linear(tokens, wkv, bkv).chunk(2, dim=-1)
    q = F.linear(query, wq, bq)
    out = F.scaled_dot_product_attention(_heads(q, attn.num_heads), _heads(k, attn.num_heads),
                                         _heads(v, attn.num_heads), attn_mask=mask)
    return attn.out_proj(_merge(out))


def head_finish(head: AttentionPoolingHead, h: torch.Tensor) -> torch.Tensor:
    return h + head.mlp(head.layernorm(h))


# ------------------------------------------------------------------------------------- graphs
class VisionGraph(nn.Module):
    """patches (T, p*p*C) float, grids (B, 2) int64 -> ``last_hidden_state`` (T, D) packed, after
    post-LN; ``image_embeds`` (B, D) L2-normalised (MAP head). Patches as ``vision.patchify``."""

    def __init__(self, model: FGCLIP2):
        super().__init__()
        self.vision = model.vision_model

    def positions(self, grids: torch.Tensor, num_tokens) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.vision.embeddings
        g = emb.grid
        image, row, col = token_layout(grids, num_tokens)
        h, w = grids[image, 0], grids[image, 1]
        # torch 2.13's CPU antialiased bilinear kernel, resizing to width 1 while changing the height,
        # gives every output row the weights of row 0 (pinned in tests/deploy/test_onnx_export.py). The
        # PyTorch model, like the official one, calls that kernel, so the graph reproduces it.
        row = torch.where((w == 1) & (h != g), torch.zeros_like(row), row)
        wr = antialias_weights(row, h, g)
        wc = antialias_weights(col, w, g)
        table = emb.position_embedding.weight.float().reshape(g, g, -1)
        # (T, g) x (g, g*D) -> (T, g, D), then the column weights: sum_b wc[t, b] * rows[t, b, :].
        rows = (wr @ table.reshape(g, -1)).reshape(wr.shape[0], g, -1)
        return (rows * wc[:, :, None]).sum(1), image

    def forward(self, patches: torch.Tensor, grids: torch.Tensor):
        emb = self.vision.embeddings
        positions, image = self.positions(grids, patches.shape[0])
        x = emb.patch_embedding(patches) + positions
        x = encoder_forward(self.vision.encoder, x[None], block_mask(image, image))
        tokens = self.vision.post_layernorm(x)
        head = self.vision.head
        probe = head.probe.reshape(1, 1, -1).expand(1, grids.shape[0], -1)
        pooled = head_finish(head, in_proj_attention(head.attention, probe, tokens,
                                                     block_mask(torch.arange(grids.shape[0]), image)))
        return tokens[0], F.normalize(pooled[0], dim=-1)


class DenseHeadGraph(nn.Module):
    """last_hidden_state (T, D) packed + grids (B, 2) -> dense features (T, D), *unnormalised* (what
    RoIAlign pools; ``encode_dense`` L2-normalises each location)."""

    def __init__(self, model: FGCLIP2):
        super().__init__()
        self.head = model.dense_feature_head

    def forward(self, tokens: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
        image, _, _ = token_layout(grids, tokens.shape[0])
        x = tokens[None]
        out = head_finish(self.head, in_proj_attention(self.head.attention, x, x, block_mask(image, image)))
        return out[0]


class TextGraph(nn.Module):
    """input_ids (B, L) int64 + attention_mask (B, L) int64 (1 = attend; all ones = no mask, the
    training default) -> (B, D) L2-normalised text embeddings of one kind (L fixed by the kind)."""

    def __init__(self, model: FGCLIP2, kind: str):
        super().__init__()
        if kind not in TEXT_KINDS:
            raise ValueError(f"unknown text kind {kind!r}; expected one of {TEXT_KINDS}")
        self.kind = kind
        self.text = model.text_model
        self.proj = {"short": None, "box": model.boxtext_head, "long": model.longtext_head}[kind]
        self.length = model.text_model.expected_length(kind)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.text.embeddings(input_ids, self.kind)
        mask = (attention_mask != 0)[:, None, None, :]
        x = encoder_forward(self.text.encoder, x, mask)
        pooled = self.text.final_layer_norm(x[:, -1])
        pooled = self.text.head(pooled) if self.proj is None else self.proj(pooled)
        return F.normalize(pooled, dim=-1)


def roi_align_1x1_weights(start: torch.Tensor, end: torch.Tensor, size) -> torch.Tensor:
    """Per box, the (N, size) weights along one axis of mmcv's RoIAlign, output 1x1, aligned=True,
    sampling_ratio=0 (mmcv/ops/csrc/pytorch/cpu/roi_align.cpp): ``ceil(end - start)`` samples at
    ``start + (i + 0.5) * len / n``; a sample below -1 or above ``size`` reads 0, otherwise it is
    clamped into [0, size - 1] and reads rows with a triangle filter; the weights are summed and
    divided by the sample count. Samples inside [-1, size] are at most 2 * size + 3 apart-one steps
    (steps exceed 0.5), so enumerating 2 * size + 6 from the first one that can count is exact."""
    length = end - start
    count = torch.ceil(length)
    step = length / count.clamp_min(1.0)
    first = torch.floor((-1.0 - start) / step.clamp_min(1e-6) - 0.5) - 1.0
    first = first.clamp_min(0.0)
    k = torch.arange(2 * size + 6, device=start.device, dtype=torch.float32)
    idx = first[:, None] + k[None, :]  # (N, K) sample indices
    y = start[:, None] + (idx + 0.5) * length[:, None] / count.clamp_min(1.0)[:, None]
    j = torch.arange(size, device=start.device, dtype=torch.float32)
    last = j[-1]  # size - 1 as a tensor: the size stays a graph value, not a traced constant
    valid = (idx < count[:, None]) & (y >= -1.0) & (y <= last + 1.0)
    yc = torch.minimum(y.clamp_min(0.0), last)
    tri = (1.0 - (j[None, None, :] - yc[:, :, None]).abs()).clamp_min(0.0)  # (N, K, size)
    return (tri * valid[:, :, None].to(tri.dtype)).sum(1) / count.clamp_min(1.0)[:, None]


class RegionGraph(nn.Module):
    """dense map (D, h, w) unnormalised + boxes (N, 4) xyxy in pixels of the processed image ->
    (N, D) L2-normalised region embeddings (``FGCLIP2.pool_regions``: RoIAlign 1x1, aligned, adaptive
    sampling; zero-area boxes give zero vectors)."""

    def __init__(self, patch_size: int):
        super().__init__()
        self.scale = 1.0 / patch_size

    def forward(self, dense_map: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        _, h, w = dense_map.shape
        b = boxes.to(torch.float32) * self.scale - 0.5
        wy = roi_align_1x1_weights(b[:, 1], b[:, 3], h)
        wx = roi_align_1x1_weights(b[:, 0], b[:, 2], w)
        fmap = dense_map.to(torch.float32)
        pooled = ((wy @ fmap.permute(1, 0, 2).reshape(h, -1)).reshape(-1, fmap.shape[0], w) * wx[:, None, :]).sum(-1)
        return F.normalize(pooled, dim=-1)
