"""Helpers shared by the loss modules: graph-connected zeros and the process-group size."""
from __future__ import annotations

import torch
import torch.distributed as dist


def graph_zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that depends on every given tensor (``t.sum() * 0``).

    Returned for empty inputs so that ``backward()`` gives *zero* gradients (not ``None``) to the
    parameters behind them: DDP (``find_unused_parameters=False``) and ZeRO expect every rank to
    produce the same autograd graph each step, whether or not its local batch had regions."""
    zero = None
    for t in tensors:
        term = t.sum() * 0
        zero = term if zero is None else zero + term
    if zero is None:
        raise ValueError("graph_zero needs at least one tensor")
    return zero


def dist_rank_world(group=None) -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, (0, 1) without one.

    The size always comes from the process group, never from a config number (the official code
    takes it from ``--train_use_word_size``, TRN:L136, L566)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def check_2d_pair(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must both be (N, D) with the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
