"""Textual Intra-modal Contrastive loss L_TIC (official ``hard_category_contrastive_loss``
``FG2:L566-576`` + ``PNTextLoss`` ``FG2:L35-43``, weight 0.1 at ``FG2:L489``).

On the N region-caption embeddings R (L2-normalised) of the local batch:
``S = R Rᵀ`` (no temperature); diagonal set to 0; entries > ``threshold`` (0.95, near-duplicate
captions) set to 0; per row the top-k values v (k = 10); ``L = mean_i log Σ_k exp(v_ik)``.
Zeroed entries stay candidates with value 0, as in the official code.

Defined behaviour where the official code throws (``topk(10)`` inside a bare try/except, FG2:L485-533):
k = min(topk, N) — identical to the official loss when N ≥ topk; N = 0 → a graph-connected zero.
"""
from __future__ import annotations

import torch
from torch import nn

from ._utils import graph_zero


class TextIntraModalLoss(nn.Module):
    """``forward(region_text (N, D)) -> scalar``; ``threshold`` and ``topk`` configurable."""

    def __init__(self, threshold: float = 0.95, topk: int = 10):
        super().__init__()
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.threshold = float(threshold)
        self.topk = int(topk)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, topk={self.topk}"

    def forward(self, region_text: torch.Tensor) -> torch.Tensor:
        if region_text.dim() != 2:
            raise ValueError(f"region_text must be (N, D), got {tuple(region_text.shape)}")
        n = region_text.shape[0]
        if n == 0:
            return graph_zero(region_text)
        sim = region_text @ region_text.t()
        sim = sim * (1 - torch.eye(n, dtype=sim.dtype, device=sim.device))
        sim = sim.masked_fill(sim > self.threshold, 0)
        top = sim.topk(min(self.topk, n), dim=1).values
        return torch.logsumexp(top, dim=1).mean()
