"""FG-OVD accuracy (official fgclip2/eval/fgovd_bbox_roi.py), per difficulty file.

An item is correct iff the positive caption's score (index 0) equals the maximum score over its
captions. Ties therefore count as correct, as in the official ``torch.equal(max, scores[0])``
(e.g. a negative identical to the positive). Accuracy = correct / items, a fraction in [0, 1].
Keys: ``fgovd/<difficulty>`` (hard, medium, easy, trivial for the official files, else the
test_type itself) and ``fgovd/<difficulty>_num``.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmdet.registry import METRICS

from ..datasets.fgovd import FGOVD_DIFFICULTY


def positive_is_top(scores: np.ndarray) -> np.ndarray:
    """(N, K) scores -> (N,) bool: score[:, 0] equals the row max (ties are correct)."""
    scores = np.asarray(scores)
    return scores[:, 0] == scores.max(axis=1)


@METRICS.register_module()
class FGOVDMetric(BaseMetric):
    """Reads ``pred_instances.caption_scores`` (FGCLIP2CaptionRanker) and the ``test_type`` meta."""

    default_prefix = "fgovd"

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            scores = np.asarray(sample["pred_instances"]["caption_scores"].cpu())
            test_type = sample.get("test_type", "all")
            self.results.extend((test_type, bool(c)) for c in positive_is_top(scores))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError("FGOVDMetric: no items were evaluated")
        groups = defaultdict(list)
        for test_type, correct in results:
            groups[FGOVD_DIFFICULTY.get(test_type, test_type)].append(correct)
        metrics = {}
        for name, values in groups.items():
            metrics[name] = float(np.mean(values))
            metrics[f"{name}_num"] = len(values)
        return metrics
