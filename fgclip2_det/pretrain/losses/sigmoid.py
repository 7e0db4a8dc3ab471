"""SigLIP sigmoid image-text loss, local and distributed (official ``FG2:L630-693``).

``logits = t·I Tᵀ + b`` with ``t = exp(logit_scale)``; labels ``y = 2·Id − 1`` (all −1 for another
rank's texts); ``L = −Σ_ij log σ(y_ij · logits_ij) / B_local``.

Distributed (process group initialised, world size > 1): every rank's texts are negatives for the
local images and gradients flow back to the rank that owns them.

* ``mode="reduce"`` (official ``loss_type="reduce"``, ``FG2:L673-693``): for each rank k,
  ``T_k = all_reduce(T · [rank == k])`` (differentiable); positives only in the k == rank term.
* ``mode="gather"`` (``FG2:L656-670``): differentiable ``all_gather`` of the texts, one
  (B, W·B) logit matrix with the positives on the local block's diagonal.

World size comes from the process group (the official code reads it from a CLI flag, TRN:L136, L566).
Contract: all ranks have the same local batch size B (both collectives need it; the pretraining
sampler and dataset guarantee it). One small ``all_gather`` of the sizes runs first, so a broken
contract raises on every rank, naming each rank's size, instead of hanging or failing inside the
big collectives. Then the mean over ranks of the per-rank losses equals the single-process loss on
the concatenated global batch, and with DDP's gradient averaging (÷W) the gradients match too.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import nn

from ._utils import check_2d_pair, dist_rank_world, graph_zero

MODES = ("reduce", "gather")


def sigmoid_pair_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor,
                      bias: torch.Tensor, positive_diagonal: bool) -> torch.Tensor:
    """``−Σ log σ(y · (scale·I Tᵀ + bias)) / B_image`` (official ``_loss``, ``FG2:L630-653``);
    ``scale`` is the temperature itself (already exponentiated)."""
    logits = image_emb @ text_emb.t() * scale + bias
    labels = -torch.ones_like(logits)
    if positive_diagonal:
        labels = labels + 2 * torch.eye(logits.shape[0], logits.shape[1], dtype=logits.dtype,
                                        device=logits.device)
    return -F.logsigmoid(labels * logits).sum() / image_emb.shape[0]


def check_equal_batch_sizes(size: int, world: int, group, device=None) -> None:
    """Raises on every rank when the ranks' local batch sizes differ (one tiny collective; the
    tensors live on ``device`` because NCCL needs them on the GPU)."""
    sizes = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([size], dtype=torch.long, device=device), group=group)
    sizes = [int(s) for s in sizes]
    if len(set(sizes)) > 1:
        raise RuntimeError("the global sigmoid loss needs the same local batch size on every rank, got "
                           + ", ".join(f"rank {r}: {b}" for r, b in enumerate(sizes))
                           + " (use GlobalLanguageBatchSampler and a dataset that replaces bad samples)")


class SigmoidContrastiveLoss(nn.Module):
    """SigLIP loss; see the module docstring. ``forward(image_emb, text_emb, logit_scale, logit_bias)``
    takes L2-normalised (B, D) embeddings, the log-temperature (``.exp()`` is applied here) and the
    bias; returns a scalar. Without a process group (or world size 1) it is the plain local loss."""

    def __init__(self, mode: str = "reduce", group=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.group = group

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    def forward(self, image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor) -> torch.Tensor:
        check_2d_pair(image_emb, text_emb, ("image_emb", "text_emb"))
        scale = logit_scale.exp()
        rank, world = dist_rank_world(self.group)
        if world == 1:
            if image_emb.shape[0] == 0:
                return graph_zero(image_emb, text_emb, logit_scale, logit_bias)
            return sigmoid_pair_loss(image_emb, text_emb, scale, logit_bias, True)
        group = self.group if self.group is not None else dist.group.WORLD
        check_equal_batch_sizes(image_emb.shape[0], world, group, image_emb.device)
        if self.mode == "gather":
            texts = torch.cat(dist_fn.all_gather(text_emb, group=group), dim=0)
            b = image_emb.shape[0]
            logits = image_emb @ texts.t() * scale + logit_bias
            labels = -torch.ones_like(logits)
            labels[:, rank * b:(rank + 1) * b] += 2 * torch.eye(b, dtype=logits.dtype, device=logits.device)
            return -F.logsigmoid(labels * logits).sum() / b
        loss = image_emb.new_zeros(())
        for k in range(world):
            # every rank takes part in every all_reduce (same order everywhere); the gradient of
            # T_k is all-reduced in backward and the [rank == k] mask routes it to its owner
            texts_k = dist_fn.all_reduce(text_emb * float(rank == k), group=group)
            loss = loss + sigmoid_pair_loss(image_emb, texts_k, scale, logit_bias, k == rank)
        return loss
