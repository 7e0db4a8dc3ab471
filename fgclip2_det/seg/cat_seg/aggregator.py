"""CAT-Seg's cost aggregation (Cho et al., CVPR 2024, §3; cvlab-kaist/CAT-Seg,
cat_seg/modeling/transformer/model.py ``Aggregator``) on FG-CLIP 2 features.

    cost       cos(dense feature at (y, x), class text embedding), one map per class and prompt
    embed      7x7 conv, prompts -> hidden channels, each class on its own
    layers x N spatial aggregation: a window + shifted-window Swin pair per class, queries and keys
                 guided by a projection of the dense features (appearance guidance) (:mod:`.swin`)
               class aggregation: at every (average-pooled) location, linear attention across the K
                 classes, queries and keys guided by a projection of the class text embeddings;
                 then an MLP, bilinear upsampling back, residual
    decoder    two x2 steps (transposed conv, concatenate a guidance map, two 3x3 conv + GN + ReLU);
                 the guidance of the first step comes from the EARLIER backbone block (x2 transposed
                 conv), that of the second from the LATER block (x4), each through a 3x3 conv + ReLU
    head       3x3 conv -> one logit per class at stride 4 of the feature grid

Nothing has a class-specific weight and no operation depends on the class order (the class attention
has no positional encoding), so the module takes any vocabulary and is class-permutation
equivariant.

Class count (CAT-Seg's ``pad_len``, 256): the class attention always sees ``pad_len`` tokens per
location. With fewer classes it is padded with copies of a learned token (and a learned text
guidance) in every class-attention layer; with more, each image keeps the ``pad_len`` classes whose
cost volume peaks highest and the others get logit -100 (so A-847 and PC-459 run 256 classes per
view). The padding changes every class's output (linear attention sums over all tokens).

Memory: everything but the class attention is per class, so ``class_chunk`` classes go through at a
time. The class attention is linear attention (``elu + 1`` feature map, "Transformers are RNNs",
Katharopoulos et al., 2020): its key/value summary is a sum over classes, so it is accumulated over
the chunks first and the queries then run chunk by chunk. Chunked and unchunked runs compute the same
numbers (up to summation order); with ``with_cp`` each chunk's activations are recomputed in the
backward pass (gradient checkpointing), so training memory no longer grows with K x activations.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .swin import GuidedSwinPair

#: Logit of a class left out by the ``pad_len`` cut (CAT-Seg's ``Aggregator.forward``: -100).
TOP_CLASSES_FILL = -100.0


def _as_pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"expected a positive int or an (h, w) pair, got {value!r}")
    return value


class ClassAggregationLayer(nn.Module):
    """Pre-norm linear attention across classes (+ MLP) at every pooled location; no output
    projection, as CAT-Seg's ``ClassTransformerLayer``: ``y = p + Attn(LN(p)); y = y + MLP(LN(y))``
    on the pooled input ``p``, and the layer returns ``x + upsample(y)`` (the whole block output,
    itself residual, is added to the input). See the module doc for the chunking."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, mlp_ratio: int = 4, eps: float = 1e-6,
                 pad_len: int = 0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden dim {dim} is not divisible by {num_heads} heads")
        self.dim, self.guidance_dim, self.num_heads, self.eps = dim, guidance_dim, num_heads, eps
        # CAT-Seg's ``pad_len``: fewer than pad_len classes are padded with copies of one learned token
        # (and one learned text guidance), which join the keys and values of every location
        self.pad_len = int(pad_len)
        self.padding_token = nn.Parameter(torch.zeros(dim)) if self.pad_len > 0 else None
        self.padding_guidance = nn.Parameter(torch.zeros(guidance_dim)) if self.pad_len > 0 and guidance_dim else None
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.ReLU(), nn.Linear(dim * mlp_ratio, dim))

    # ------------------------------------------------------------------------------ pieces
    def _guided(self, layer: nn.Linear, t: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        """``layer(cat([t, g], -1))``, ``g`` (k, G) broadcast over the locations of ``t`` (..., k, C)."""
        out = F.linear(t, layer.weight[:, :self.dim], layer.bias)
        if self.guidance_dim:
            out = out + F.linear(g, layer.weight[:, self.dim:])
        return out

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(*t.shape[:-1], self.num_heads, -1)

    @staticmethod
    def _pool(x: torch.Tensor, pooling: tuple[int, int]) -> torch.Tensor:
        """(B, k, H, W, C) -> (B, hp, wp, k, C) average-pooled tokens."""
        if pooling == (1, 1):
            return x.permute(0, 2, 3, 1, 4)
        b, k, h, w, c = x.shape
        pooled = F.avg_pool2d(x.permute(0, 1, 4, 2, 3).reshape(b * k, c, h, w), pooling)
        return pooled.reshape(b, k, c, *pooled.shape[-2:]).permute(0, 3, 4, 1, 2)

    def key_value(self, tokens: torch.Tensor, g: torch.Tensor | None, total: int):
        """One chunk's share of the key/value summary: sum_k phi(key_k) value_k^T / K and sum_k phi(key_k)."""
        n = self.norm1(tokens)
        key, value = self._guided(self.k, n, g), self.v(n)
        with torch.autocast(tokens.device.type, enabled=False):  # sums over up to ~1000 classes: float32
            key = F.elu(self._heads(key).float()) + 1                               # (..., k, h, d)
            value = self._heads(value).float() / total                              # (..., k, h, d)
            return torch.einsum("...khd,...khe->...hde", key, value), key.sum(dim=-3)

    def attend(self, x: torch.Tensor, tokens: torch.Tensor, g: torch.Tensor | None, kv: torch.Tensor,
               ksum: torch.Tensor, total: int) -> torch.Tensor:
        """One chunk: queries against the summary, MLP, upsampling, residual -> (B, k, H, W, C)."""
        query = self._guided(self.q, self.norm1(tokens), g)
        with torch.autocast(tokens.device.type, enabled=False):
            query = F.elu(self._heads(query).float()) + 1                           # (..., k, h, d)
            z = 1.0 / (torch.einsum("...khd,...hd->...kh", query, ksum) + self.eps)
            att = torch.einsum("...khd,...hde->...khe", query, kv) * z[..., None] * total
        t = tokens + att.flatten(-2).to(tokens.dtype)
        t = t + self.mlp(self.norm2(t))
        b, hp, wp, k, c = t.shape
        h, w = x.shape[2:4]
        if (hp, wp) != (h, w):
            t = F.interpolate(t.permute(0, 3, 4, 1, 2).reshape(b * k, c, hp, wp), size=(h, w), mode="bilinear",
                              align_corners=True).reshape(b, k, c, h, w).permute(0, 1, 3, 4, 2)
        else:
            t = t.permute(0, 3, 1, 2, 4)
        return x + t

    def forward(self, x: torch.Tensor, text_guidance: torch.Tensor | None, pooling: tuple[int, int],
                chunks: Sequence[slice], with_cp: bool = False) -> torch.Tensor:
        """x (B, K, H, W, C); text_guidance (K, G) or None -> (B, K, H, W, C)."""
        num_pad = max(self.pad_len - x.shape[1], 0)
        total = x.shape[1] + num_pad
        g = [None if text_guidance is None else text_guidance[c] for c in chunks]
        tokens, kv, ksum = [], 0, 0
        for c, gc in zip(chunks, g):
            tokens.append(self._pool(x[:, c], pooling))
            kv_c, ksum_c = self.key_value(tokens[-1], gc, total)
            kv, ksum = kv + kv_c, ksum + ksum_c
        if num_pad:  # num_pad identical padding tokens at every location: one token's share, times num_pad
            pad = self.padding_token.to(tokens[0].dtype).expand(*tokens[0].shape[:3], 1, self.dim)
            pad_g = None if self.padding_guidance is None else self.padding_guidance[None]
            kv_p, ksum_p = self.key_value(pad, pad_g, total)
            kv, ksum = kv + num_pad * kv_p, ksum + num_pad * ksum_p
        outs = []
        for c, t, gc in zip(chunks, tokens, g):
            args = (x[:, c], t, gc, kv, ksum, total)
            outs.append(checkpoint(self.attend, *args, use_reentrant=False) if with_cp else self.attend(*args))
        return torch.cat(outs, dim=1)


class GuidedUpsample(nn.Module):
    """One x2 decoder step (CAT-Seg's ``Up``): transposed conv to ``cin - guidance_dim`` channels,
    concatenate the (B, guidance_dim, 2h, 2w) guidance (shared by the classes), then
    (3x3 conv, GroupNorm, ReLU) x 2 to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, guidance_dim: int):
        super().__init__()
        if not 0 <= guidance_dim < cin:
            raise ValueError(f"decoder guidance width {guidance_dim} must be below the step's input width {cin}")
        if cout % 16:
            raise ValueError(f"decoder widths must be multiples of 16 (GroupNorm of width / 16 groups), got {cout}")
        self.up = nn.ConvTranspose2d(cin, cin - guidance_dim, kernel_size=2, stride=2)
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(cout // 16, cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(cout // 16, cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B * k, cin, h, w), classes of an image consecutive -> (B * k, cout, 2h, 2w)."""
        x = self.up(x)
        if guidance is not None:
            b = guidance.shape[0]
            k = x.shape[0] // b
            guidance = guidance[:, None].expand(b, k, *guidance.shape[1:]).reshape(b * k, *guidance.shape[1:])
            x = torch.cat([x, guidance.to(x.dtype)], dim=1)
        return self.conv(x)


class CATSegAggregator(nn.Module):
    """Args (CAT-Seg config key in brackets; defaults = ``configs/vitb_384.yaml``):
        embed_dim: width of the dense map and text embeddings (FG-CLIP 2: vision hidden size).
        guidance_width: width of the backbone block maps that guide the decoder (ditto).
        prompt_channels: prompt templates per class (the cost volume's channels) [1 = "single"].
        hidden_dim: width of the aggregated cost features [HIDDEN_DIMS 128].
        text_guidance_dim / appearance_guidance_dim: projected guidance widths [*_GUIDANCE_PROJ_DIM 128].
        decoder_dims: widths after the two x2 steps [DECODER_DIMS (64, 32)].
        decoder_guidance_dims: widths of the x2 / x4 transposed convs of the earlier / later block
            map (CAT-Seg's meta-architecture ``upsample1`` / ``upsample2``) [DECODER_GUIDANCE_DIMS (256, 128)].
        decoder_guidance_proj_dims: their 3x3-conv projections [DECODER_GUIDANCE_PROJ_DIMS (32, 16)].
        num_layers: spatial + class aggregation pairs [NUM_LAYERS 2].
        num_heads: heads of both attentions [NUM_HEADS 4].
        pooling_size: average pooling before the class attention in training [POOLING_SIZES (2, 2)];
            ``forward(..., pooling_size=)`` overrides it (CAT-Seg evaluates with (1, 1)).
        window_size: Swin window [WINDOW_SIZES 12].
        class_chunk: classes per step of the per-class stages (None = all; memory only, module doc).
        with_cp: gradient checkpointing of every class chunk (memory only).
        pad_len: CAT-Seg's class-attention length [``Aggregator(pad_len=256)``, not set in its configs]:
            fewer classes are padded with a learned token in every class-attention layer; with more,
            each image keeps the ``pad_len`` classes of highest cost (max over prompts and positions)
            and the others get logit -100 (module doc). 0 turns both off.
    """

    def __init__(self, embed_dim: int, guidance_width: int, prompt_channels: int = 1, hidden_dim: int = 128,
                 text_guidance_dim: int = 128, appearance_guidance_dim: int = 128,
                 decoder_dims: Sequence[int] = (64, 32), decoder_guidance_dims: Sequence[int] = (256, 128),
                 decoder_guidance_proj_dims: Sequence[int] = (32, 16), num_layers: int = 2, num_heads: int = 4,
                 pooling_size: int | Sequence[int] = (2, 2), window_size: int = 12, class_chunk: int | None = None,
                 with_cp: bool = False, pad_len: int = 256):
        super().__init__()
        if pad_len < 0:
            raise ValueError(f"pad_len must be >= 0, got {pad_len}")
        self.pad_len = int(pad_len)
        if len(decoder_dims) != 2 or len(decoder_guidance_dims) != 2 or len(decoder_guidance_proj_dims) != 2:
            raise ValueError("decoder_dims, decoder_guidance_dims and decoder_guidance_proj_dims take two "
                             "entries, one per x2 step")
        if not (text_guidance_dim > 0 and appearance_guidance_dim > 0):
            raise ValueError("text_guidance_dim and appearance_guidance_dim must be positive")
        self.embed_dim, self.prompt_channels = int(embed_dim), int(prompt_channels)
        self.pooling_size = _as_pair(pooling_size)
        self.class_chunk = class_chunk
        self.with_cp = bool(with_cp)
        self.cost_embed = nn.Conv2d(prompt_channels, hidden_dim, kernel_size=7, padding=3)
        self.appearance_proj = nn.Sequential(nn.Conv2d(embed_dim, appearance_guidance_dim, 3, padding=1), nn.ReLU())
        self.text_proj = nn.Sequential(nn.Linear(embed_dim, text_guidance_dim), nn.ReLU())
        self.guidance_up = nn.ModuleList([
            nn.ConvTranspose2d(guidance_width, decoder_guidance_dims[0], kernel_size=2, stride=2),
            nn.ConvTranspose2d(guidance_width, decoder_guidance_dims[1], kernel_size=4, stride=4)])
        self.guidance_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, p, 3, padding=1), nn.ReLU())
            for d, p in zip(decoder_guidance_dims, decoder_guidance_proj_dims))
        self.spatial = nn.ModuleList(GuidedSwinPair(hidden_dim, appearance_guidance_dim, num_heads, window_size)
                                     for _ in range(num_layers))
        self.classwise = nn.ModuleList(ClassAggregationLayer(hidden_dim, text_guidance_dim, num_heads, pad_len=pad_len)
                                       for _ in range(num_layers))
        self.up1 = GuidedUpsample(hidden_dim, decoder_dims[0], decoder_guidance_proj_dims[0])
        self.up2 = GuidedUpsample(decoder_dims[0], decoder_dims[1], decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(decoder_dims[1], 1, kernel_size=3, padding=1)

    # ------------------------------------------------------------------------------ helpers
    def class_chunks(self, k: int) -> list[slice]:
        step = k if not self.class_chunk else int(self.class_chunk)
        return [slice(i, min(i + step, k)) for i in range(0, k, step)]

    def _run(self, fn, *args):
        if self.with_cp and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def decoder_guidance(self, guidance: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Dv, h, w) earlier and later block maps -> guidance of the first (2h) and second (4h) x2 step."""
        return tuple(proj(up(g)) for proj, up, g in zip(self.guidance_proj, self.guidance_up, guidance))

    def _embed_cost(self, dense_n: torch.Tensor, text_n: torch.Tensor) -> torch.Tensor:
        """Normalised (B, D, h, w) x (k, P, D) -> cost (B, k, P, h, w) -> (B, k, h, w, C)."""
        cost = torch.einsum("bdhw,kpd->bkphw", dense_n, text_n)
        b, k, p, h, w = cost.shape
        x = self.cost_embed(cost.reshape(b * k, p, h, w).to(self.cost_embed.weight.dtype))
        return x.reshape(b, k, -1, h, w).permute(0, 1, 3, 4, 2)

    def _decode(self, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """(B, k, h, w, C) -> (B, k, 4h, 4w) logits."""
        b, k, h, w, c = x.shape
        y = self.up2(self.up1(x.permute(0, 1, 4, 2, 3).reshape(b * k, c, h, w), g1), g2)
        return self.head(y).reshape(b, k, 4 * h, 4 * w)

    # ------------------------------------------------------------------------------ forward
    def forward(self, dense: torch.Tensor, text: torch.Tensor, guidance: Sequence[torch.Tensor],
                pooling_size: int | Sequence[int] | None = None) -> torch.Tensor:
        """dense (B, D, h, w) dense map; text (K, P, D) or (K, D) class embeddings; guidance: the
        earlier and the later backbone block maps, (B, Dv, h, w) each. Returns (B, K, 4h, 4w) logits."""
        if text.dim() == 2:
            text = text[:, None]
        if text.dim() != 3 or text.shape[0] == 0 or text.shape[-1] != self.embed_dim:
            raise ValueError(f"text embeddings must be a non-empty (K, P, {self.embed_dim}) or (K, {self.embed_dim}) "
                             f"tensor, got shape {tuple(text.shape)}")
        if text.shape[1] != self.prompt_channels:
            raise ValueError(f"got {text.shape[1]} prompt embeddings per class; the aggregator was built for "
                             f"prompt_channels={self.prompt_channels}")
        if len(guidance) != 2:
            raise ValueError(f"expected 2 guidance maps (earlier block, later block), got {len(guidance)}")
        pooling = self.pooling_size if pooling_size is None else _as_pair(pooling_size)
        text_n = F.normalize(text.float(), dim=-1)
        dense_n = F.normalize(dense.float(), dim=1)
        if self.pad_len and text.shape[0] > self.pad_len:
            return self._top_classes(dense, text, guidance, pooling, dense_n, text_n)
        chunks = self.class_chunks(text.shape[0])
        appearance = self.appearance_proj(dense).permute(0, 2, 3, 1)                 # (B, h, w, G)
        text_guidance = self.text_proj(F.normalize(text_n.mean(dim=1), dim=-1))     # (K, G)
        g1, g2 = self.decoder_guidance(guidance)
        x = torch.cat([self._embed_cost(dense_n, text_n[c]) for c in chunks], dim=1)  # (B, K, h, w, C)
        for spatial, classwise in zip(self.spatial, self.classwise):
            x = torch.cat([self._run(spatial, x[:, c], appearance) for c in chunks], dim=1)
            x = classwise(x, text_guidance, pooling, chunks, self.with_cp and torch.is_grad_enabled())
        return torch.cat([self._run(self._decode, x[:, c], g1, g2) for c in chunks], dim=1)

    def _top_classes(self, dense, text, guidance, pooling, dense_n, text_n) -> torch.Tensor:
        """CAT-Seg with more than ``pad_len`` classes: per image, the ``pad_len`` classes whose cost
        peaks highest (max over prompts and positions) go through the aggregator; the rest get -100."""
        outs = []
        for b in range(dense.shape[0]):
            peak = torch.einsum("dhw,kpd->kphw", dense_n[b], text_n).flatten(1).amax(dim=1)      # (K,)
            keep = peak.topk(self.pad_len).indices
            logits = self(dense[b:b + 1], text[keep], [g[b:b + 1] for g in guidance], pooling)
            out = logits.new_full((1, text.shape[0], *logits.shape[-2:]), TOP_CLASSES_FILL)
            outs.append(out.index_copy(1, keep, logits))
        return torch.cat(outs)
