"""Weighted stage-2 total in MMEngine's loss-dict form (official weights inline at
``FG2:L476-530, L613-617``):

``L = L_sig(I,long) + L_sig(I,short) + 0.2·L_FGV + 0.1·L_TIC + 0.5·(0.6·L_hc + 3·L_FGT + 0.4·L_CMR)``

``weighted_losses`` returns ``loss_<name> = weight · term``; MMEngine's ``parse_losses`` sums every
entry whose key *contains* ``"loss"``, so diagnostics (e.g. ``cmr_threshold``) must not contain it.
"""
from __future__ import annotations

import torch

LOSS_TERMS = ("global_long", "global_short", "fgv", "tic", "hc", "fgt", "cmr")


def official_loss_weights(global_long: float = 1.0, global_short: float = 1.0, fgv: float = 0.2,
                          tic: float = 0.1, hard: float = 0.5, hc: float = 0.6, fgt: float = 3.0,
                          cmr: float = 0.4) -> dict[str, float]:
    """Effective per-term weights; ``hard`` multiplies the three hard-negative terms
    (defaults: hc 0.3, fgt 1.5, cmr 0.2)."""
    return dict(global_long=global_long, global_short=global_short, fgv=fgv, tic=tic,
                hc=hard * hc, fgt=hard * fgt, cmr=hard * cmr)


DEFAULT_LOSS_WEIGHTS = official_loss_weights()


def weighted_losses(terms: dict[str, torch.Tensor | None], weights: dict[str, float] | None = None,
                    diagnostics: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """``{"loss_<name>": weight · term}`` for every non-None term (e.g. ``global_long`` is None when a
    batch has no long captions), plus ``diagnostics`` detached and unprefixed.

    ``terms`` keys must be in ``LOSS_TERMS``; ``weights`` overrides entries of
    ``DEFAULT_LOSS_WEIGHTS`` (effective weights)."""
    w = dict(DEFAULT_LOSS_WEIGHTS)
    for name, value in (weights or {}).items():
        if name not in LOSS_TERMS:
            raise ValueError(f"unknown loss weight {name!r}; known: {LOSS_TERMS}")
        w[name] = float(value)
    out: dict[str, torch.Tensor] = {}
    for name, term in terms.items():
        if name not in LOSS_TERMS:
            raise ValueError(f"unknown loss term {name!r}; known: {LOSS_TERMS}")
        if term is not None:
            out[f"loss_{name}"] = w[name] * term
    for name, value in (diagnostics or {}).items():
        if "loss" in name:
            raise ValueError(f"diagnostic {name!r} contains 'loss' and would be summed into the total")
        out[name] = torch.as_tensor(value).detach()
    return out
