"""Per-image mIoU areas and their paired bootstrap (fgclip2_det/evaluation/seg_bootstrap.py, CLI
tools/compare_miou.py)."""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from fgclip2_det.evaluation import OVSemSegMetric, OVSemSegPerImageMetric
from fgclip2_det.evaluation.seg_bootstrap import PerImageAreas, load_areas, miou_summary, paired_bootstrap
from tool_helpers import load_tool

META = dict(classes=("bg", "cat", "dog"), novel_classes=("dog",))


def _sample(pred, gt, path):
    return dict(pred_sem_seg=dict(sem_seg=torch.tensor(pred)[None], ignore_index=255),
                gt_sem_seg=dict(sem_seg=torch.tensor(gt)[None]), img_path=path)


SAMPLES = [_sample([[0, 1, 1, 1], [2, 2, 0, 0]], [[0, 0, 1, 1], [2, 2, 2, 255]], "a.png"),
           _sample([[1, 1, 0, 0]], [[1, 0, 0, 0]], "b.png"),
           _sample([[2, 2, 2, 1]], [[2, 2, 1, 1]], "c.png")]


def _run(metric, samples):
    metric.dataset_meta = META
    metric.process({}, samples)
    with contextlib.redirect_stdout(io.StringIO()):
        return metric.evaluate(len(samples))


def test_per_image_metric_saves_the_areas_and_keeps_the_metrics(tmp_path):
    path = tmp_path / "sub" / "areas.npz"
    out = _run(OVSemSegPerImageMetric(per_image_file=str(path)), SAMPLES)
    assert out == _run(OVSemSegMetric(), SAMPLES)
    areas = load_areas(str(path))
    assert areas.img_paths == ["a.png", "b.png", "c.png"] and areas.classes == list(META["classes"])
    assert areas.novel_classes == ["dog"] and areas.unseen.tolist() == [False, False, True]
    # image a: IoU areas per class (bg, cat, dog), the 255 pixel not counted
    assert areas.intersect[0].tolist() == [1, 2, 2] and areas.union[0].tolist() == [3, 3, 3]
    summary = miou_summary(areas.intersect.sum(0), areas.union.sum(0), areas.unseen)
    for key in ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU"):
        assert round(float(summary[key]), 2) == pytest.approx(out[key], abs=0.011)


def test_miou_summary_by_hand_with_an_absent_class():
    inter, union = np.array([1.0, 0.0, 2.0, 0.0]), np.array([4.0, 0.0, 4.0, 2.0])
    unseen = np.array([False, False, True, True])
    s = miou_summary(inter, union, unseen)  # IoU: 25, absent (left out), 50, 0
    assert s["mIoU_seen"] == pytest.approx(25.0) and s["mIoU_unseen"] == pytest.approx(25.0)
    assert s["mIoU"] == pytest.approx(75 / 3) and s["hIoU"] == pytest.approx(25.0)
    assert miou_summary(np.zeros(2), np.ones(2), np.array([False, True]))["hIoU"] == 0.0


def _areas(intersect, union, paths=None):
    n = len(intersect)
    return PerImageAreas(np.array(intersect, float), np.array(union, float), np.array(union, float),
                         paths or [f"{i}.png" for i in range(n)], ["bg", "cat", "dog"], ["dog"])


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    union = rng.integers(50, 100, (40, 3)).astype(float)
    a = _areas(np.floor(union * 0.5), union)
    same = paired_bootstrap(a, a, n_boot=200)
    assert all(r["B-A"] == 0 and r["lo"] == 0 and r["hi"] == 0 for r in same.values())
    better = paired_bootstrap(a, _areas(np.floor(union * 0.7), union), n_boot=500)
    assert better["mIoU_unseen"]["B-A"] > 0 and better["mIoU_unseen"]["lo"] > 0 and better["hIoU"]["p_le_0"] == 0
    full = miou_summary(a.intersect.sum(0), a.union.sum(0), a.unseen)
    assert better["mIoU"]["A"] == pytest.approx(float(full["mIoU"]))
    # identical images: every redraw sums to a multiple of one image, so the interval is a point
    one = _areas(np.tile([[5.0, 2.0, 1.0]], (10, 1)), np.tile([[10.0, 10.0, 10.0]], (10, 1)))
    two = _areas(np.tile([[6.0, 2.0, 3.0]], (10, 1)), np.tile([[10.0, 10.0, 10.0]], (10, 1)))
    r = paired_bootstrap(one, two, n_boot=50)["mIoU_unseen"]
    assert r["B-A"] == pytest.approx(20.0) and r["lo"] == pytest.approx(20.0) and r["hi"] == pytest.approx(20.0)


def test_mismatched_files_are_errors():
    a = _areas([[1, 1, 1]], [[2, 2, 2]])
    with pytest.raises(ValueError, match="different images"):
        paired_bootstrap(a, _areas([[1, 1, 1]], [[2, 2, 2]], paths=["other.png"]))


def test_the_command_line(tmp_path, capsys):
    for name, samples in (("a", SAMPLES), ("b", SAMPLES[:2] + [_sample([[2, 2, 1, 1]], [[2, 2, 1, 1]], "c.png")])):
        _run(OVSemSegPerImageMetric(per_image_file=str(tmp_path / f"{name}.npz")), samples)
    result = load_tool("compare_miou").main([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                                             "--names", "head", "clearclip", "--samples", "100"])
    printed = capsys.readouterr().out
    assert "| metric | head | clearclip | clearclip - head | 95% interval |" in printed
    assert result["mIoU_unseen"]["B-A"] > 0
