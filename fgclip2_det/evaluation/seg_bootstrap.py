"""Is segmentation B's mIoU really above A's? Per-image areas and a paired bootstrap over images
(``tools/compare_miou.py`` is its command line).

mIoU is a dataset-level number: per class, the intersections and unions of every image are summed
before dividing, so it cannot be averaged over images. :class:`OVSemSegPerImageMetric` therefore keeps
each image's per-class areas (``OVSemSegMetric``'s, unchanged metrics) and writes them to an ``.npz``
file; :func:`paired_bootstrap` redraws the images with replacement, sums the areas of the draw for A
and for B alike (the same images, so the interval is of the paired difference B - A) and recomputes
mIoU, mIoU_seen, mIoU_unseen and hIoU exactly as ``OVSemSegMetric`` does (classes whose union is 0 in
a draw are left out of the means).

    python tools/test.py CONFIG --cfg-options test_evaluator.type=OVSemSegPerImageMetric \\
        test_evaluator.per_image_file=work_dirs/x/a.npz [...]
    python tools/compare_miou.py work_dirs/x/a.npz work_dirs/x/b.npz --names head clearclip
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from mmdet.registry import METRICS

from .ovseg_metric import OVSemSegMetric

SUMMARY_KEYS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU")


@METRICS.register_module()
class OVSemSegPerImageMetric(OVSemSegMetric):
    """:class:`OVSemSegMetric` that also saves every image's per-class areas to ``per_image_file``
    (``.npz``: ``intersect``, ``union``, ``label`` as (images, classes), ``img_paths``, ``classes``,
    ``novel_classes``)."""

    def __init__(self, per_image_file: str, **kwargs):
        super().__init__(**kwargs)
        self.per_image_file = str(per_image_file)

    def process(self, data_batch: dict, data_samples) -> None:
        start = len(self.results)
        super().process(data_batch, data_samples)
        with_gt = [s for s in data_samples if not self.format_only and "gt_sem_seg" in s]
        for result, sample in zip(self.results[start:], with_gt):
            result["img_path"] = str(sample.get("img_path", ""))

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        stack = lambda key: np.stack([np.asarray(r[key], dtype=np.float64) for r in results])  # noqa: E731
        os.makedirs(os.path.dirname(os.path.abspath(self.per_image_file)), exist_ok=True)
        np.savez_compressed(self.per_image_file, intersect=stack("area_intersect"), union=stack("area_union"),
                            label=stack("area_label"), img_paths=np.array([r.get("img_path", "") for r in results]),
                            classes=np.array(list(self.dataset_meta["classes"])),
                            novel_classes=np.array(list(self.dataset_meta.get("novel_classes") or ())))
        return metrics


@dataclass
class PerImageAreas:
    intersect: np.ndarray  # (N, K)
    union: np.ndarray  # (N, K)
    label: np.ndarray  # (N, K)
    img_paths: list[str]
    classes: list[str]
    novel_classes: list[str]

    @property
    def unseen(self) -> np.ndarray:
        novel = set(self.novel_classes)
        return np.array([c in novel for c in self.classes])


def load_areas(path: str) -> PerImageAreas:
    """An ``.npz`` of :class:`OVSemSegPerImageMetric`."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("intersect", "union", "label", "img_paths", "classes", "novel_classes") if k not in f]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} (not written by OVSemSegPerImageMetric)")
        return PerImageAreas(f["intersect"], f["union"], f["label"], [str(p) for p in f["img_paths"]],
                             [str(c) for c in f["classes"]], [str(c) for c in f["novel_classes"]])


def miou_summary(intersect: np.ndarray, union: np.ndarray, unseen: np.ndarray) -> dict[str, np.ndarray]:
    """Summed areas (..., K) -> mIoU, mIoU_seen, mIoU_unseen, hIoU in percent (unrounded), each of
    shape (...): ``OVSemSegMetric``'s formulas, classes with a zero union left out (NaN IoU)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersect / np.where(union > 0, union, 1), np.nan) * 100

    def mean(cols):
        sub = iou[..., cols]
        n = (~np.isnan(sub)).sum(-1)
        return np.where(n > 0, np.nansum(sub, -1) / np.maximum(n, 1), np.nan)

    seen, unseen_m = mean(~unseen), mean(unseen)
    with np.errstate(invalid="ignore"):
        h = np.where(seen + unseen_m > 0, 2 * seen * unseen_m / np.where(seen + unseen_m > 0, seen + unseen_m, 1), 0.0)
    h = np.where(np.isnan(seen) | np.isnan(unseen_m), np.nan, h)
    return {"mIoU": mean(np.ones_like(unseen)), "mIoU_seen": seen, "mIoU_unseen": unseen_m, "hIoU": h}


def paired_bootstrap(a: PerImageAreas, b: PerImageAreas, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, dict[str, float]]:
    """Per summary key: ``A``, ``B``, ``B-A`` on the full set and the ``lo`` / ``hi`` percentile bounds
    of B - A over ``n_boot`` paired redraws of the images; ``p_le_0``: the share of draws with
    B - A <= 0 (a one-sided bootstrap p-value for "B is better")."""
    if a.img_paths != b.img_paths:
        raise ValueError("the two files hold different images (or a different order): evaluate both on "
                         "the same test split with the same dataloader")
    if a.classes != b.classes or a.novel_classes != b.novel_classes:
        raise ValueError("the two files have different vocabularies")
    n = len(a.img_paths)
    if n == 0:
        raise ValueError("no images")
    unseen = a.unseen
    full_a = miou_summary(a.intersect.sum(0), a.union.sum(0), unseen)
    full_b = miou_summary(b.intersect.sum(0), b.union.sum(0), unseen)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    draw_a = miou_summary(counts @ a.intersect, counts @ a.union, unseen)
    draw_b = miou_summary(counts @ b.intersect, counts @ b.union, unseen)
    tail = (1 - level) / 2 * 100
    out = {}
    for key in SUMMARY_KEYS:
        diff = draw_b[key] - draw_a[key]
        lo, hi = np.nanpercentile(diff, [tail, 100 - tail])
        out[key] = {"A": float(full_a[key]), "B": float(full_b[key]), "B-A": float(full_b[key] - full_a[key]),
                    "lo": float(lo), "hi": float(hi), "p_le_0": float(np.nanmean(diff <= 0))}
    return out


def format_table(result: dict[str, dict[str, float]], name_a: str = "A", name_b: str = "B",
                 level: float = 0.95) -> str:
    """The :func:`paired_bootstrap` result as a markdown table."""
    pct = f"{level * 100:g}%"
    lines = [f"| metric | {name_a} | {name_b} | {name_b} - {name_a} | {pct} interval | P(diff <= 0) |",
             "|---|---|---|---|---|---|"]
    for key, r in result.items():
        lines.append(f"| {key} | {r['A']:.2f} | {r['B']:.2f} | {r['B-A']:+.2f} | "
                     f"[{r['lo']:+.2f}, {r['hi']:+.2f}] | {r['p_le_0']:.3f} |")
    return "\n".join(lines)
