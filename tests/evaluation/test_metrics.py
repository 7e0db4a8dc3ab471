"""BoxClassMetric and FGOVDMetric on hand-made predictions (official protocols, docs/official_code.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS

from fgclip2_det.evaluation import positive_is_top
from det_helpers import mmdet_scope  # noqa: F401  (autouse fixture)


def _boxclass_sample(gt, topk):
    return dict(gt_instances=dict(labels=torch.tensor(gt)),
                pred_instances=dict(topk_labels=torch.tensor(topk), labels=torch.tensor([t[0] for t in topk])))


def test_boxclass_metric_by_hand():
    metric = METRICS.build(dict(type="BoxClassMetric"))
    metric.dataset_meta = dict(classes=("cat", "dog", "car", "bus"), base_classes=("cat", "dog"),
                               novel_classes=("car", "bus"))
    metric.process({}, [_boxclass_sample([0, 1, 2], [[0, 1, 2, 3, 4], [2, 1, 0, 3, 4], [3, 0, 1, 4, 5]])])
    metric.process({}, [_boxclass_sample([2], [[2, 0, 1, 3, 4]])])
    metric.process({}, [_boxclass_sample([], np.zeros((0, 5), np.int64))])  # an image without boxes
    got = metric.evaluate(3)
    # boxes: cat ok, dog wrong (top-5 ok), car wrong (not in top-5), car ok
    assert got["boxclass/num_boxes"] == 4
    assert got["boxclass/top1"] == pytest.approx(2 / 4)
    assert got["boxclass/top5"] == pytest.approx(3 / 4)
    assert got["boxclass/mean_class_top1"] == pytest.approx((1 + 0 + 0.5) / 3)  # classes with boxes only
    assert got["boxclass/base_top1"] == pytest.approx(1 / 2) and got["boxclass/base_num_boxes"] == 2
    assert got["boxclass/novel_top1"] == pytest.approx(1 / 2) and got["boxclass/novel_num_boxes"] == 2


def test_boxclass_metric_classwise_names_every_class_with_a_box():
    metric = METRICS.build(dict(type="BoxClassMetric", classwise=True))
    metric.dataset_meta = dict(classes=("cat", "dog", "car", "bus"))
    metric.process({}, [_boxclass_sample([0, 2, 2, 2], [[0], [2], [1], [2]])])
    got = metric.evaluate(1)
    assert got["boxclass/cat_top1"] == 1.0 and got["boxclass/car_top1"] == pytest.approx(2 / 3)
    assert "boxclass/dog_top1" not in got and "boxclass/bus_top1" not in got  # no boxes: no entry
    default = METRICS.build(dict(type="BoxClassMetric"))
    default.dataset_meta = metric.dataset_meta
    default.process({}, [_boxclass_sample([0], [[0]])])
    assert "boxclass/cat_top1" not in default.evaluate(1)


def test_boxclass_metric_narrow_topk_and_errors():
    metric = METRICS.build(dict(type="BoxClassMetric"))
    metric.dataset_meta = dict(classes=("a", "b"))
    metric.process({}, [_boxclass_sample([1, 0], [[1, 0], [1, 0]])])
    got = metric.evaluate(1)
    assert "boxclass/top5" not in got and got["boxclass/top1"] == 0.5 and "boxclass/base_top1" not in got
    metric.dataset_meta = dict(classes=("a", "b"), base_classes=("zebra",))
    metric.process({}, [_boxclass_sample([1], [[1, 0]])])
    with pytest.raises(ValueError, match="zebra"):
        metric.evaluate(1)
    with pytest.raises(ValueError, match="no boxes"):
        METRICS.build(dict(type="BoxClassMetric")).evaluate(0)


def test_positive_is_top_ties_count_as_correct():
    scores = torch.tensor([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.3, 0.5, 0.2], [0.25, 0.25, 0.5]]).numpy()
    assert positive_is_top(scores).tolist() == [True, True, False, False]
    # official: torch.equal(max, scores[0]) on the same rows
    assert [torch.equal(torch.tensor(r).max(), torch.tensor(r)[0]) for r in scores] == [True, True, False, False]


def test_fgovd_metric_per_difficulty():
    metric = METRICS.build(dict(type="FGOVDMetric"))

    def sample(test_type, scores):
        return dict(test_type=test_type, pred_instances=dict(caption_scores=torch.tensor([scores])))

    metric.process({}, [sample("1_attributes", [0.6, 0.4]), sample("1_attributes", [0.5, 0.5]),
                        sample("1_attributes", [0.1, 0.9]), sample("shuffle_negatives", [0.2, 0.3, 0.5])])
    metric.process({}, [sample("mine", [0.9, 0.05, 0.05])])
    got = metric.evaluate(5)
    assert got["fgovd/hard"] == pytest.approx(2 / 3) and got["fgovd/hard_num"] == 3  # the tie is correct
    assert got["fgovd/trivial"] == 0.0 and got["fgovd/mine"] == 1.0
    assert not any(math.isnan(v) for v in got.values())
