"""Fine-grained visual loss L_FGV: region–text InfoNCE (official
``pairwise_contrastive_loss``, ``FG2:L555-564``, weight 0.2 at ``FG2:L488, L503-505``).

``P = s_f · V Rᵀ`` (N×N, ``s_f = exp(logit_scale_fg)``), ``L = ½[CE(P, arange) + CE(Pᵀ, arange)]``
over the N valid regions of the *local* batch (not gathered across ranks, as FG2:L492-501).
N = 0 → a zero connected to V, R and the scale (``x.sum()*0``), so every rank builds the same
graph and every parameter gets a (zero) gradient — DDP without ``find_unused_parameters`` works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import check_2d_pair, graph_zero


class RegionTextContrastiveLoss(nn.Module):
    """``forward(region_emb (N, D), region_text (N, D), logit_scale_fg) -> scalar``; inputs L2-normalised,
    row i of each is one region and its caption."""

    def forward(self, region_emb: torch.Tensor, region_text: torch.Tensor,
                logit_scale_fg: torch.Tensor) -> torch.Tensor:
        check_2d_pair(region_emb, region_text, ("region_emb", "region_text"))
        n = region_emb.shape[0]
        if n == 0:
            return graph_zero(region_emb, region_text, logit_scale_fg)
        logits = logit_scale_fg.exp() * region_emb @ region_text.t()
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
