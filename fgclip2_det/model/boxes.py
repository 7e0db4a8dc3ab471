"""Box validation and rescaling shared by the image processor, the model and the MMDetection
transforms: one message format and one formula everywhere."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def check_boxes(boxes: Any, image: int | str) -> torch.Tensor:
    """``boxes`` (array-like or tensor, N x 4 xyxy) -> float64 CPU tensor (N, 4), validated:
    finite, x2 >= x1 and y2 >= y1. Errors name the image (its index in a batch, or its path) and the
    box. Empty input gives (0, 4)."""
    where = f"boxes of image {image}" if isinstance(image, int) else str(image)
    if isinstance(boxes, torch.Tensor):
        t = boxes.detach().to("cpu", torch.float64)
    else:
        t = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    if t.numel() == 0:
        t = t.reshape(0, 4)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"{where} must have shape (N, 4) xyxy, got {tuple(t.shape)}")
    bad = (~torch.isfinite(t)).any(dim=1).nonzero().flatten()
    if len(bad):
        raise ValueError(f"{where}: box {int(bad[0])} is not finite: {t[bad[0]].tolist()}")
    inverted = ((t[:, 2] < t[:, 0]) | (t[:, 3] < t[:, 1])).nonzero().flatten()
    if len(inverted):
        i = int(inverted[0])
        raise ValueError(f"{where}: box {i} has x2 < x1 or y2 < y1 (xyxy expected): "
                         f"{t[i].tolist()}")
    return t


def rescale_boxes(boxes: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """xyxy boxes from an image of size ``src`` (H, W) to ``dst`` (H, W) as ``x / W * W'`` in float64,
    returned as float32: the official box evaluations' mapping (coco_box_ddp.py computes
    ``x / W * w`` on the grid), so a box reaching the image edge maps exactly onto the edge."""
    scaled = boxes.to(torch.float64).reshape(-1, 4).clone()
    scaled[:, 0::2] = scaled[:, 0::2] / src[1] * dst[1]
    scaled[:, 1::2] = scaled[:, 1::2] / src[0] * dst[0]
    return scaled.to(torch.float32)
