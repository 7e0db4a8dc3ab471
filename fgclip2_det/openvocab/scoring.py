"""FG-CLIP 2's zero-shot scoring rule, written once.

The official box evaluations (fgclip2/eval/coco_box_ddp.py; LVIS, BoxClass-CN and FG-OVD in
fgclip2/eval/, docs/official_code.md) score an L2-normalised region embedding against L2-normalised
text embeddings by ``softmax(100 * cos)`` over the candidates. Box classification, the FG-OVD ranker,
the detector's FG-CLIP 2 branch, training-free segmentation and the web demo all call these
functions, so one temperature and one formula serve everywhere.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: The softmax temperature of FG-CLIP 2's box protocol (``logits = 100 * image @ text.T``).
BOX_TEMPERATURE = 100.0


def cosine(regions: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(N, D) regions x (C, D) texts -> (N, C) cosines, in float32 (both sides L2-normalised here)."""
    return F.normalize(regions.float(), dim=-1) @ F.normalize(texts.float(), dim=-1).t()


def zero_shot_logits(regions: torch.Tensor, texts: torch.Tensor, temperature: float = BOX_TEMPERATURE
                     ) -> torch.Tensor:
    """(N, C) ``temperature * cos``: every region against one shared list of texts."""
    return temperature * cosine(regions, texts)


def zero_shot_probs(regions: torch.Tensor, texts: torch.Tensor, temperature: float = BOX_TEMPERATURE
                    ) -> torch.Tensor:
    """(N, C) ``softmax(temperature * cos)`` over the texts."""
    return zero_shot_logits(regions, texts, temperature).softmax(dim=-1)


def per_region_logits(regions: torch.Tensor, texts: torch.Tensor, temperature: float = BOX_TEMPERATURE
                      ) -> torch.Tensor:
    """(N, K) ``temperature * cos`` of each region against its own K texts (N, K, D): FG-OVD, where
    every box has its own captions."""
    return temperature * torch.einsum("nd,nkd->nk", F.normalize(regions.float(), dim=-1),
                                      F.normalize(texts.float(), dim=-1))


def dense_cosine(dense: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) or (D, h, w) dense features x (C, D) texts -> (B, C, h, w) / (C, h, w) cosines at
    every location (the cost volume of cost-aggregation decoders)."""
    if dense.dim() == 3:
        return dense_cosine(dense[None], texts)[0]
    return torch.einsum("bdhw,kd->bkhw", F.normalize(dense.float(), dim=1), F.normalize(texts.float(), dim=-1))


def dense_logits(dense: torch.Tensor, texts: torch.Tensor, temperature: float = BOX_TEMPERATURE) -> torch.Tensor:
    """``temperature * cos`` at every location: the per-patch zero-shot logits (training-free
    segmentation); their softmax over classes is the box rule applied to each patch."""
    return temperature * dense_cosine(dense, texts)


def first_max(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and its index per row; ties -> the lowest index (``argmax`` semantics)."""
    if probs.shape[0] == 0:
        return probs.new_zeros(0), torch.zeros(0, dtype=torch.long, device=probs.device)
    labels = probs.argmax(dim=-1)
    return probs.gather(1, labels[:, None])[:, 0], labels
