"""A cost-aggregation decoder in the style of CAT-Seg (Cho et al., CVPR 2024).

Instead of decoding image features into a fixed set of classes, it decodes the *cost volume*
``cos(dense feature at (y, x), text embedding of class k)``, one map per class, so the same weights
apply to any vocabulary:

1. embed each class's cost map (a shared conv; classes folded into the batch);
2. spatial aggregation: convs over (y, x), guided by a projection of the dense features;
3. class aggregation: at every location, a transformer layer across the K classes (no positional
   encoding, so it is permutation-equivariant), guided by a projection of the text embeddings;
4. upsampling x4 with transposed convs, each step guided by an earlier backbone block map;
5. a 1x1 conv to one logit per class and location (stride 4).

Memory grows with K x H x W x channels: the benchmark measures it from 20 to 847 classes.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..openvocab.scoring import dense_cosine


def _conv_gn(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.GroupNorm(min(8, cout), cout), nn.GELU())


class CostAggregationDecoder(nn.Module):
    """Args:
        embed_dim: FG-CLIP 2 width (dense features and text embeddings).
        guidance_dim: width of the backbone block maps used to guide upsampling.
        channels: width of the per-class cost features.
        guidance_channels: width of the dense-feature / text guidance projections.
        num_spatial / num_class_layers: depth of the two aggregations.
        num_heads: heads of the class-aggregation attention.
        class_chunk: classes per step of the per-class stages (memory only; results unchanged).
    """

    def __init__(self, embed_dim: int, guidance_dim: int, channels: int = 64, guidance_channels: int = 32,
                 num_spatial: int = 2, num_class_layers: int = 1, num_heads: int = 4, class_chunk: int = 64):
        super().__init__()
        self.num_heads = num_heads
        self.class_chunk = int(class_chunk)
        self.cost_embed = nn.Conv2d(1, channels, 7, padding=3)
        self.visual_guidance = nn.Conv2d(embed_dim, guidance_channels, 1)
        self.text_guidance = nn.Linear(embed_dim, guidance_channels)
        self.spatial = nn.ModuleList(_conv_gn(channels + guidance_channels, channels) for _ in range(num_spatial))
        self.class_in = nn.Linear(channels + guidance_channels, channels)
        self.class_layers = nn.ModuleList(
            nn.TransformerEncoderLayer(channels, num_heads, dim_feedforward=2 * channels, dropout=0.0,
                                       batch_first=True, norm_first=True) for _ in range(num_class_layers))
        half, quarter = channels // 2, channels // 4
        self.up1 = nn.ConvTranspose2d(channels, half, 2, stride=2)
        self.guide1 = nn.ConvTranspose2d(guidance_dim, half, 2, stride=2)
        self.fuse1 = _conv_gn(2 * half, half)
        self.up2 = nn.ConvTranspose2d(half, quarter, 2, stride=2)
        self.guide2 = nn.Sequential(nn.ConvTranspose2d(guidance_dim, half, 2, stride=2), nn.GELU(),
                                    nn.ConvTranspose2d(half, quarter, 2, stride=2))
        self.fuse2 = _conv_gn(2 * quarter, quarter)
        self.head = nn.Conv2d(quarter, 1, 1)

    def forward(self, dense: torch.Tensor, text: torch.Tensor, guidance: Sequence[torch.Tensor]) -> torch.Tensor:
        """dense (B, D, h, w); text (K, D); guidance: two (B, G, h, w) block maps (coarse guidance
        first, e.g. a middle and an early block). Returns (B, K, 4h, 4w) logits."""
        if text.dim() != 2 or text.shape[0] == 0:
            raise ValueError(f"text embeddings must be a non-empty (K, D) tensor, got shape {tuple(text.shape)}")
        if len(guidance) != 2:
            raise ValueError(f"expected 2 guidance maps, got {len(guidance)}")
        k = text.shape[0]
        cost = dense_cosine(dense, text)                                           # (B, K, h, w)
        vis = self.visual_guidance(dense.float())                                 # (B, G, h, w)
        x = torch.cat([self._spatial(cost[:, c], vis) for c in self._class_chunks(k)], dim=1)
        x = self._aggregate_classes(x, text)                                      # (B, K, C, h, w)
        g1, g2 = self.guide1(guidance[0].float()), self.guide2(guidance[1].float())
        return torch.cat([self._upsample(x[:, c], g1, g2) for c in self._class_chunks(k)], dim=1)

    def _class_chunks(self, k: int) -> list[slice]:
        """Per-class stages run on ``class_chunk`` classes at a time: memory stays bounded for
        large vocabularies (ADE20K-847) while results are the same."""
        return [slice(i, min(i + self.class_chunk, k)) for i in range(0, k, self.class_chunk)]

    def _spatial(self, cost: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """(B, k, h, w) costs -> (B, k, C, h, w), each class map on its own."""
        b, k, h, w = cost.shape
        x = self.cost_embed(cost.reshape(b * k, 1, h, w))
        vis = vis[:, None].expand(b, k, *vis.shape[1:]).reshape(b * k, -1, h, w)
        for layer in self.spatial:
            x = x + layer(torch.cat([x, vis], dim=1))
        return x.reshape(b, k, -1, h, w)

    def _aggregate_classes(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Attention across the K classes at every location, in chunks of locations so that the
        (locations x heads x K x K) attention weights stay around 2**24 numbers."""
        b, k, c, h, w = x.shape
        tokens = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, k, c)
        txt = self.text_guidance(F.normalize(text.float(), dim=-1))
        step = max(1, 2 ** 24 // (self.num_heads * k * k))
        out = []
        for i in range(0, len(tokens), step):
            t = tokens[i:i + step]
            t = self.class_in(torch.cat([t, txt[None].expand(len(t), k, -1)], dim=-1))
            for layer in self.class_layers:
                t = layer(t)
            out.append(t)
        return torch.cat(out).reshape(b, h, w, k, c).permute(0, 3, 4, 1, 2)

    def _upsample(self, x: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
        """(B, k, C, h, w) -> (B, k, 4h, 4w) logits, guided by the upsampled block maps."""
        b, k, c, h, w = x.shape
        x = self._fuse(self.up1(x.reshape(b * k, c, h, w)), g1, self.fuse1, k)
        x = self._fuse(self.up2(x), g2, self.fuse2, k)
        return self.head(x).reshape(b, k, 4 * h, 4 * w)

    @staticmethod
    def _fuse(x: torch.Tensor, guide: torch.Tensor, fuse: nn.Module, k: int) -> torch.Tensor:
        """Concatenate the (B, G, H, W) guide to each of the K class maps, then fuse."""
        b = guide.shape[0]
        guide = guide[:, None].expand(b, k, *guide.shape[1:]).reshape(b * k, *guide.shape[1:])
        return fuse(torch.cat([x, guide], dim=1))
