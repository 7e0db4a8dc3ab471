"""Hard-negative losses of stage 2 (official ``hard_contrastive_total_loss``
``FG2:L587-618``, combined as 0.5·(0.6·L_hc + 3·L_FGT + 0.4·L_CMR) at ``FG2:L510, L613-617``).

Inputs: region features V (H, D) and texts T (H, 1+K, D), both L2-normalised, the positive
caption first; ``s_h = exp(logit_scale_hn)``. K is whatever T has (the official code hard-codes
K = 10 via ``reshape(B_h, 11, -1)``, FG2:L580, L589; a wrong shape raises ``ValueError`` instead of
being swallowed). H = 0 → a zero connected to V, T and the scale.

* ``HardNegativeLoss`` (L_FGT, ``hard_contrastive_loss`` ``FG2:L578-584``): softmax CE over the
  1+K candidates ``[g_i, n_i1..n_iK]`` with target 0, ``g_i = s_h⟨v_i, t_i⁰⟩``, ``n_ik = s_h⟨v_i, t_iᵏ⟩``.
* ``BatchHardContrastiveLoss`` (L_hc, ``FG2:L591-606``): ``A = s_h · V [T⁰; T^neg_flat]ᵀ``
  (H × (H + H·K)), ``Bm = s_h · T⁰ Vᵀ`` (H × H); ``½[CE(A, arange) + CE(Bm, arange)]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._utils import graph_zero


def check_hard_negative_inputs(region_emb: torch.Tensor, texts: torch.Tensor) -> tuple[int, int]:
    """Validate V (H, D) / T (H, 1+K, D) with K >= 1; returns (H, K)."""
    if region_emb.dim() != 2:
        raise ValueError(f"region features must be (H, D), got {tuple(region_emb.shape)}")
    if texts.dim() != 3:
        raise ValueError(f"hard-negative texts must be (H, 1+K, D) with the positive first, "
                         f"got {tuple(texts.shape)}")
    h, d = region_emb.shape
    if texts.shape[0] != h or texts.shape[2] != d:
        raise ValueError(f"hard-negative texts {tuple(texts.shape)} do not match region features "
                         f"{tuple(region_emb.shape)}: expected ({h}, 1+K, {d})")
    if texts.shape[1] < 2:
        raise ValueError(f"need at least one negative caption per region (1+K >= 2), got {texts.shape[1]}")
    return h, texts.shape[1] - 1


def hard_negative_logits(region_emb: torch.Tensor, texts: torch.Tensor,
                         logit_scale_hn: torch.Tensor) -> torch.Tensor:
    """(H, 1+K) scaled logits ``s_h⟨v_i, t_iᶜ⟩``; column 0 = positive g, columns 1: = negatives n
    (the inputs of ``CrossModalRankLoss``)."""
    check_hard_negative_inputs(region_emb, texts)
    return logit_scale_hn.exp() * torch.einsum("hd,hcd->hc", region_emb, texts)


class HardNegativeLoss(nn.Module):
    """L_FGT: ``forward(region_emb (H, D), texts (H, 1+K, D), logit_scale_hn) -> scalar``."""

    def forward(self, region_emb: torch.Tensor, texts: torch.Tensor,
                logit_scale_hn: torch.Tensor) -> torch.Tensor:
        h, _ = check_hard_negative_inputs(region_emb, texts)
        if h == 0:
            return graph_zero(region_emb, texts, logit_scale_hn)
        logits = hard_negative_logits(region_emb, texts, logit_scale_hn)
        return F.cross_entropy(logits, torch.zeros(h, dtype=torch.long, device=logits.device))


class BatchHardContrastiveLoss(nn.Module):
    """L_hc: ``forward(region_emb (H, D), texts (H, 1+K, D), logit_scale_hn) -> scalar``."""

    def forward(self, region_emb: torch.Tensor, texts: torch.Tensor,
                logit_scale_hn: torch.Tensor) -> torch.Tensor:
        h, _ = check_hard_negative_inputs(region_emb, texts)
        if h == 0:
            return graph_zero(region_emb, texts, logit_scale_hn)
        scale = logit_scale_hn.exp()
        positives = texts[:, 0]
        candidates = torch.cat([positives, texts[:, 1:].reshape(-1, texts.shape[2])], dim=0)
        target = torch.arange(h, device=region_emb.device)
        a = scale * region_emb @ candidates.t()
        bm = scale * positives @ region_emb.t()
        return 0.5 * (F.cross_entropy(a, target) + F.cross_entropy(bm, target))
