"""mIoU with the seen / unseen split of open-vocabulary segmentation.

MMDetection's ``SemSegMetric`` (aAcc, mIoU, per-class table) plus ``mIoU_seen``, ``mIoU_unseen``
(classes in ``dataset_meta['novel_classes']``) and their harmonic mean ``hIoU``, the usual summary of
zero-shot segmentation. ``aAcc`` is recomputed as pixel accuracy: MMDetection 3.3's ``SemSegMetric``
averages per-class accuracies under that name (its ``aAcc`` equals ``mAcc``). Classes absent from both prediction and ground truth are left out of the
means (NaN IoU), as in ``mIoU``. Ground-truth values outside the vocabulary (other than the ignore
index) are an error naming the image: ``SemSegMetric`` would silently drop them from its histograms.
"""
from __future__ import annotations

import numpy as np
import torch
from mmdet.evaluation.metrics import SemSegMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class OVSemSegMetric(SemSegMetric):

    def process(self, data_batch: dict, data_samples) -> None:
        num_classes = len(self.dataset_meta["classes"])
        for sample in data_samples:
            if self.format_only or "gt_sem_seg" not in sample:
                continue
            gt = sample["gt_sem_seg"]["sem_seg"]
            pred = sample["pred_sem_seg"]["sem_seg"]
            ignore = sample["pred_sem_seg"].get("ignore_index", 255)
            bad = torch.unique(gt[(gt != ignore) & ((gt < 0) | (gt >= num_classes))])
            if len(bad):
                raise ValueError(f"{sample.get('img_path', '<image>')}: label values {bad.tolist()[:10]} are "
                                 f"outside the {num_classes} classes and not the ignore index {ignore}")
            if tuple(gt.shape[-2:]) != tuple(pred.shape[-2:]):
                raise ValueError(f"{sample.get('img_path', '<image>')}: label map {tuple(gt.shape[-2:])} and "
                                 f"prediction {tuple(pred.shape[-2:])} differ in size")
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        intersect = sum(r["area_intersect"] for r in results).sum()
        metrics["aAcc"] = round(float(intersect / sum(r["area_label"] for r in results).sum()) * 100, 2)
        iou = self.get_return_metrics(results)["IoU"]
        classes = list(self.dataset_meta["classes"])
        unseen = np.array([c in set(self.dataset_meta.get("novel_classes") or ()) for c in classes])
        if unseen.any():
            seen_miou = float(np.nanmean(iou[~unseen]) * 100) if (~unseen).any() else float("nan")
            unseen_miou = float(np.nanmean(iou[unseen]) * 100)
            metrics["mIoU_seen"] = round(seen_miou, 2)
            metrics["mIoU_unseen"] = round(unseen_miou, 2)
            h = 2 * seen_miou * unseen_miou / (seen_miou + unseen_miou) if seen_miou + unseen_miou > 0 else 0.0
            metrics["hIoU"] = round(h, 2)
        return metrics
