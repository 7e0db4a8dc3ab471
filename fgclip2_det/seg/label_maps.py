"""The label map of a training sample, checked before a loss reads it (shared by the segmentors)."""
from __future__ import annotations

import torch


def checked_label_map(sample, padded_shape, num_classes: int, ignore_index: int) -> torch.Tensor:
    """The (H, W) long label map of ``sample`` (an mmdet data sample with ``gt_sem_seg``).

    Raises ValueError naming the image when the map's shape is not the padded batch's, or when a
    label is neither a class index (0..num_classes-1) nor ``ignore_index``: a silent out-of-range
    label would index past the class axis or train on a wrong class.
    """
    where = sample.metainfo.get("img_path", "<image>")
    gt = sample.gt_sem_seg.sem_seg.squeeze(0).long()
    if tuple(gt.shape) != tuple(padded_shape):
        raise ValueError(f"{where}: label map of shape {tuple(gt.shape)} does not match the image batch "
                         f"{tuple(padded_shape)}; are the image and its label map the same size?")
    bad = torch.unique(gt[(gt != ignore_index) & ((gt < 0) | (gt >= num_classes))])
    if len(bad):
        raise ValueError(f"{where}: label values {bad.tolist()[:10]} are outside the {num_classes} classes "
                         f"(0..{num_classes - 1}) and not the ignore index {ignore_index}")
    return gt
