"""SigLIP 2 NaFlex vision tower (official MOD:L117-215, L386-443): variable-resolution images as
packed patch tokens."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig
from .layers import AttentionPoolingHead, Encoder


def patchify(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(C, H, W) -> (h*w, p*p*C): patches row-major over the grid, each flattened as
    (patch_row, patch_col, channel), the layout of the official image processor."""
    c, height, width = image.shape
    h, w = height // patch_size, width // patch_size
    x = image.reshape(c, h, patch_size, w, patch_size).permute(1, 3, 2, 4, 0)
    return x.reshape(h * w, patch_size * patch_size * c)


def unpack_maps(tokens: torch.Tensor, grids: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Packed (T, D) tokens -> one (D, h, w) map per image (row-major token order)."""
    lengths = [h * w for h, w in grids]
    return [t.t().reshape(-1, h, w) for t, (h, w) in zip(tokens.split(lengths), grids)]


@dataclass
class VisionOutput:
    tokens: torch.Tensor  # (T, D) packed, after post_layernorm
    grids: list[tuple[int, int]]  # (h, w) patch grid per image
    intermediates: list[torch.Tensor]  # packed (T, D) outputs of the requested blocks (pre post-LN)

    @property
    def lengths(self) -> list[int]:
        return [h * w for h, w in self.grids]


class VisionEmbeddings(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.grid = round(cfg.num_patches ** 0.5)
        self.patch_embedding = nn.Linear(cfg.num_channels * cfg.patch_size ** 2, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.num_patches, cfg.hidden_size)

    def resized_positions(self, h: int, w: int) -> torch.Tensor:
        """The learned 16x16 table resized to an (h, w) grid: bilinear, antialias, align_corners
        False, in float32 (antialias has no half-precision CPU kernel) -> (h*w, D)."""
        table = self.position_embedding.weight
        grid = table.reshape(self.grid, self.grid, -1).permute(2, 0, 1).unsqueeze(0).float()
        resized = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return resized.reshape(table.shape[1], h * w).t().to(table.dtype)

    def forward(self, patches: torch.Tensor, grids: list[tuple[int, int]]) -> torch.Tensor:
        cache = {g: self.resized_positions(*g) for g in dict.fromkeys(grids)}
        positions = torch.cat([cache[g] for g in grids])
        return self.patch_embedding(patches.to(self.patch_embedding.weight.dtype)) + positions


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = VisionEmbeddings(cfg)
        self.encoder = Encoder(cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                               cfg.intermediate_size, cfg.hidden_act, cfg.layer_norm_eps)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.head = AttentionPoolingHead(cfg.hidden_size, cfg.num_attention_heads,
                                         cfg.intermediate_size, cfg.hidden_act, cfg.layer_norm_eps)

    def forward(self, images: list[torch.Tensor], out_indices: int | Sequence[int] = ()) -> VisionOutput:
        """``images``: list of normalised (3, H, W) tensors with H, W multiples of the patch size."""
        p = self.config.patch_size
        grids = [(img.shape[-2] // p, img.shape[-1] // p) for img in images]
        patches = torch.cat([patchify(img, p) for img in images])
        x = self.embeddings(patches, grids)
        lengths = [h * w for h, w in grids]
        x, intermediates = self.encoder(x, lengths, out_indices=out_indices)
        return VisionOutput(self.post_layernorm(x), grids, intermediates)
