"""The zero-shot rule written once (fgclip2_det.openvocab.scoring), against hand computations."""
from __future__ import annotations

import math

import torch

from fgclip2_det.openvocab import (BOX_TEMPERATURE, cosine, dense_cosine, dense_logits, first_max,
                                   per_region_logits, zero_shot_logits, zero_shot_probs)


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_box_rule_is_softmax_of_100_cos():
    regions, texts = _unit(3, 8), _unit(5, 8, seed=1)
    assert BOX_TEMPERATURE == 100.0
    for i in range(3):
        cos = [float(sum(regions[i, d] * texts[c, d] for d in range(8))) for c in range(5)]
        exp = [math.exp(100 * x - 100 * max(cos)) for x in cos]
        want = torch.tensor([e / sum(exp) for e in exp])
        torch.testing.assert_close(zero_shot_probs(regions, texts)[i], want, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(zero_shot_logits(regions, texts, 10.0)[i], 10 * torch.tensor(cos),
                                   atol=1e-5, rtol=0)


def test_inputs_need_not_be_normalised():
    regions, texts = _unit(2, 4), _unit(3, 4, seed=1)
    torch.testing.assert_close(cosine(3 * regions, 0.5 * texts), regions @ texts.t())
    assert torch.equal(cosine(torch.zeros(1, 4), texts), torch.zeros(1, 3))  # a zero region ties


def test_per_region_logits_rank_each_region_against_its_own_texts():
    regions, texts = _unit(4, 6), _unit(4, 3, 6, seed=2)
    got = per_region_logits(regions, texts, 100.0)
    for n in range(4):
        torch.testing.assert_close(got[n], 100 * texts[n] @ regions[n], atol=1e-4, rtol=0)


def test_dense_logits_apply_the_box_rule_at_every_location():
    dense, texts = torch.randn(2, 8, 3, 5), _unit(4, 8, seed=3)
    got = dense_logits(dense, texts)
    assert got.shape == (2, 4, 3, 5)
    for b, y, x in [(0, 0, 0), (1, 2, 4), (1, 1, 3)]:
        torch.testing.assert_close(got[b, :, y, x], zero_shot_logits(dense[b, :, y, x][None], texts)[0],
                                   atol=1e-4, rtol=0)
    torch.testing.assert_close(dense_cosine(dense[1], texts), dense_cosine(dense, texts)[1])


def test_first_max_breaks_ties_to_the_lowest_index():
    scores, labels = first_max(torch.tensor([[0.2, 0.25, 0.25], [0.5, 0.1, 0.5]]))
    assert labels.tolist() == [1, 0] and scores.tolist() == [0.25, 0.5]
    scores, labels = first_max(torch.zeros(0, 3))
    assert scores.shape == labels.shape == (0,)
