"""Box-classification accuracy: top-1 / top-5 over all GT boxes, as the official evals
(fgclip2/eval/coco_box_ddp.py, fgclip2/eval/in1k/{lvis,laion_cn}_box_cls_ddp.py).

Every box counts once (accuracy = correct boxes / boxes, "counts boxes", not images). Also the mean
per-class top-1 (over classes with at least one box), and with ``base_classes`` / ``novel_classes``
(names) in ``dataset_meta`` the top-1 over the boxes of each group. Values are fractions in [0, 1].
Keys: ``boxclass/top1``, ``boxclass/top5``, ``boxclass/mean_class_top1``, ``boxclass/num_boxes``,
``boxclass/base_top1``, ``boxclass/novel_top1``; with ``classwise=True`` (as MMDetection's
``CocoMetric``) also ``boxclass/<class name>_top1`` for every class that has a box.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class BoxClassMetric(BaseMetric):
    """Reads ``gt_instances.labels`` and ``pred_instances.topk_labels`` (FGCLIP2BoxClassifier)."""

    default_prefix = "boxclass"

    def __init__(self, classwise: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.classwise = classwise

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            gt = np.asarray(sample["gt_instances"]["labels"].cpu(), dtype=np.int64)
            pred = sample["pred_instances"]
            topk = pred["topk_labels"] if "topk_labels" in pred else pred["labels"][:, None]
            topk = np.asarray(topk.cpu(), dtype=np.int64)
            topk = topk.reshape(len(gt), topk.shape[-1] if topk.ndim == 2 else 1)
            self.results.append((gt, topk))

    def compute_metrics(self, results: list) -> dict[str, float]:
        results = [r for r in results if len(r[0])]
        if not results:
            raise ValueError("BoxClassMetric: no boxes were evaluated")
        gt = np.concatenate([r[0] for r in results])
        width = min(r[1].shape[1] for r in results)
        topk = np.concatenate([r[1][:, :width] for r in results])
        top1 = topk[:, 0] == gt
        metrics = {"top1": float(top1.mean()), "num_boxes": int(len(gt))}
        if width >= 5:
            metrics["top5"] = float((topk[:, :5] == gt[:, None]).any(axis=1).mean())
        present = np.unique(gt)
        per_class = [top1[gt == c].mean() for c in present]
        metrics["mean_class_top1"] = float(np.mean(per_class))
        if self.classwise:
            names = list((self.dataset_meta or {}).get("classes") or [])
            for c, accuracy in zip(present, per_class):
                metrics[f"{names[c] if c < len(names) else c}_top1"] = float(accuracy)
        for group in ("base", "novel"):
            indices = self._class_indices(f"{group}_classes")
            if indices is not None:
                mask = np.isin(gt, indices)
                metrics[f"{group}_top1"] = float(top1[mask].mean()) if mask.any() else float("nan")
                metrics[f"{group}_num_boxes"] = int(mask.sum())
        return metrics

    def _class_indices(self, key: str) -> list[int] | None:
        meta = self.dataset_meta or {}
        if not meta.get(key):
            return None
        classes = list(meta.get("classes") or [])
        missing = [n for n in meta[key] if n not in classes]
        if missing:
            raise ValueError(f"dataset_meta['{key}'] names classes that are not in dataset_meta['classes']: "
                             f"{missing[:5]}")
        return [classes.index(n) for n in meta[key]]
