"""Cross-modal Rank loss L_CMR with a globally synchronised margin τ (official
``get_cmr_loss`` ``FG2:L620-628``, threshold sync ``FG2:L526-530, L540-553``).

``forward(g (H,), n (H, K))`` takes *scaled* logits (×s_h, see ``hard_negative_logits``) and returns
``mean_{i,k} max(0, τ + n_ik − g_i)`` with the current τ (= the previous step's synchronised value).
Then, in training mode only and under no_grad:

* local ``τ̂ = mean_i g_i − mean_{(i,k): n_ik ≠ 0} n_ik`` (official: divides by the count of non-zero
  negative logits); the previous τ if this rank has no hard negatives (H = 0) or no non-zero
  negative logit (the official code would divide by zero there);
* ``τ = clamp(all_reduce_SUM(τ̂) / world_size, 0, 10)`` — world size from the process group.

Every rank performs the collective exactly once per training forward, also with H = 0 (the
official code had it inside a bare try/except, where one rank's error could deadlock the others,
FG2:L485-533): the caller must call this module on every rank every training step. Eval mode: no
update, no collective. τ is a persistent buffer, so it is saved in checkpoints and a resumed run
continues with it. H = 0 → the loss is a zero connected to g and n.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ._utils import dist_rank_world, graph_zero


class CrossModalRankLoss(nn.Module):
    """``forward(pos_logits (H,), neg_logits (H, K)) -> scalar``; buffer ``threshold`` holds τ."""

    def __init__(self, init_threshold: float = 0.0, min_threshold: float = 0.0,
                 max_threshold: float = 10.0, group=None):
        super().__init__()
        if min_threshold > max_threshold:
            raise ValueError(f"min_threshold {min_threshold} > max_threshold {max_threshold}")
        self.min_threshold = float(min_threshold)
        self.max_threshold = float(max_threshold)
        self.group = group
        self.register_buffer("threshold", torch.tensor(float(init_threshold)))

    def extra_repr(self) -> str:
        return f"clamp=[{self.min_threshold}, {self.max_threshold}]"

    def forward(self, pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
        if pos_logits.dim() != 1 or neg_logits.dim() != 2 or neg_logits.shape[0] != pos_logits.shape[0]:
            raise ValueError(f"expected pos_logits (H,) and neg_logits (H, K), "
                             f"got {tuple(pos_logits.shape)} and {tuple(neg_logits.shape)}")
        tau = self.threshold.detach().clone().to(neg_logits.dtype)
        if neg_logits.numel() == 0:
            loss = graph_zero(pos_logits, neg_logits)
        else:
            loss = (tau + neg_logits - pos_logits[:, None]).clamp(min=0).mean()
        if self.training:
            self._update_threshold(pos_logits.detach(), neg_logits.detach())
        return loss

    @torch.no_grad()
    def _update_threshold(self, pos: torch.Tensor, neg: torch.Tensor) -> None:
        local = self.threshold.detach().clone().float()
        nonzero = neg != 0
        if pos.numel() > 0 and bool(nonzero.any()):
            local = (pos.float().mean() - neg.float()[nonzero].mean()).to(local.device)
        _, world = dist_rank_world(self.group)
        if world > 1:
            dist.all_reduce(local, op=dist.ReduceOp.SUM, group=self.group)
            local = local / world
        self.threshold.copy_(local.clamp(self.min_threshold, self.max_threshold))
