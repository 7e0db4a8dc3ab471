"""Which FG-CLIP 2 parameters a CAT-Seg model trains: ``finetune='attention' | 'none' | 'full'``.

CAT-Seg (Cho et al., CVPR 2024, §3.4 / ablations; cvlab-kaist/CAT-Seg, cat_seg/cat_seg_model.py,
``CLIP_FINETUNE``) fine-tunes both CLIP towers, by default only the query and value projections of
every attention block ("QV fine-tuning"), at 0.01x the head's learning rate. Here:

* ``'attention'``: the q_proj and v_proj **weights** of every encoder block of the vision and text
  towers, and of the vision tower's dense head (FG-CLIP 2's attention that produces the dense map the
  cost volume is built from: every patch queries the block-12 tokens). That is what CAT-Seg's released
  code trains: its ``Attention`` splits ``nn.MultiheadAttention``'s packed weight into
  ``q_proj_weight`` / ``k_proj_weight`` / ``v_proj_weight`` but keeps the packed ``in_proj_bias``,
  which its name filter leaves frozen; and the filter only looks inside modules named
  ``transformer``, so CLIP's ``positional_embedding`` stays frozen although the branch names
  "position". ``position_embeddings=True`` (not CAT-Seg's default) adds the learned position tables
  the forward reads (vision ``position_embedding``; text ``position_embedding``, the short/box table).
* ``'full'``: every parameter of the encoder blocks of both towers and of the dense head (CAT-Seg's
  ``'full'`` trains everything inside the CLIP transformers), plus the position tables as above.
  Token table, patch embedding, final norms and text heads stay frozen in both modes.
* ``'none'``: both towers frozen; the text embeddings are then computed once per vocabulary (cached).

Parameters the forward never reads (the dense head's probe, the long-caption position tables, the
short-text head when box texts are used) are never trainable: DDP would refuse them.

The dense head packs W_q, W_k, W_v into one ``in_proj_weight`` (the official checkpoint layout), so
training q and v but not k needs the pack split: :class:`SplitInProjAttention` holds three ``Linear``
layers with the same numbers and computes the same function (a gradient mask on the packed tensor
would still let AdamW's decoupled weight decay move the k rows). This mirrors CAT-Seg, which splits
``nn.MultiheadAttention``'s packed projection into ``q_proj_weight`` / ``k_proj_weight`` /
``v_proj_weight`` for the same reason.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ...model.layers import PackedInProjAttention, SelfAttention, varlen_attention

FINETUNE_MODES = ("none", "attention", "full")
_QV = re.compile(r"\.(self_attn|attention)\.(q_proj|v_proj)\.weight$")


class SplitInProjAttention(SelfAttention):
    """:class:`PackedInProjAttention` with W_q, W_k, W_v as separate ``q_proj`` / ``k_proj`` /
    ``v_proj`` layers (same forward, same numbers), so q/v fine-tuning can pick them by name."""

    @classmethod
    def from_packed(cls, packed: PackedInProjAttention) -> "SplitInProjAttention":
        dim = packed.out_proj.in_features
        out = cls(dim, packed.num_heads).to(device=packed.in_proj_weight.device, dtype=packed.in_proj_weight.dtype)
        with torch.no_grad():
            for layer, w, b in zip((out.q_proj, out.k_proj, out.v_proj), packed.in_proj_weight.chunk(3),
                                   packed.in_proj_bias.chunk(3)):
                layer.weight.copy_(w)
                layer.bias.copy_(b)
        out.out_proj = packed.out_proj
        return out

    def forward(self, query: torch.Tensor, tokens: torch.Tensor, q_lengths: list[int],
                k_lengths: list[int]) -> torch.Tensor:
        out = varlen_attention(self.q_proj(query), self.k_proj(tokens), self.v_proj(tokens), self.num_heads,
                               q_lengths, k_lengths)
        return self.out_proj(out)


def split_dense_head(fgclip2: nn.Module) -> None:
    """Replace the dense head's packed attention by :class:`SplitInProjAttention` (idempotent)."""
    head = fgclip2.dense_feature_head
    if isinstance(head.attention, PackedInProjAttention):
        requires_grad = head.attention.in_proj_weight.requires_grad
        head.attention = SplitInProjAttention.from_packed(head.attention).requires_grad_(requires_grad)


def trainable_names(tower: nn.Module, side: str, mode: str, position_embeddings: bool = True) -> list[str]:
    """Names (in ``tower.named_parameters()``) that ``mode`` trains in an FG-CLIP 2 ``tower``
    (``side`` 'vision': vision model + dense head, split by :func:`split_dense_head`; 'text': text model)."""
    if mode not in FINETUNE_MODES:
        raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {mode!r}")
    if side not in ("vision", "text"):
        raise ValueError(f"side must be 'vision' or 'text', got {side!r}")
    prefix = "vision_model" if side == "vision" else "text_model"
    position = f"{prefix}.embeddings.position_embedding.weight"
    names = []
    for name, _ in tower.named_parameters():
        if mode == "none":
            continue
        in_blocks = name.startswith(f"{prefix}.encoder.layers.") or (
            side == "vision" and name.startswith("dense_feature_head.") and name != "dense_feature_head.probe")
        if (position_embeddings and name == position) or (
                in_blocks and (mode == "full" or _QV.search(name) is not None)):
            names.append(name)
    return names


def apply_trainable(tower: nn.Module, names: list[str]) -> None:
    """``requires_grad`` exactly for ``names``; everything else in ``tower`` frozen."""
    tower.requires_grad_(False)
    params = dict(tower.named_parameters())
    for name in names:
        params[name].requires_grad_(True)
