"""Box validation shared by the image processor and the model: one message format everywhere."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def check_boxes(boxes: Any, image_index: int) -> torch.Tensor:
    """``boxes`` (array-like or tensor, N x 4 xyxy) -> float64 CPU tensor (N, 4), validated:
    finite, x2 >= x1 and y2 >= y1. Errors name the image and the box. Empty input gives (0, 4)."""
    if isinstance(boxes, torch.Tensor):
        t = boxes.detach().to("cpu", torch.float64)
    else:
        t = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    if t.numel() == 0:
        t = t.reshape(0, 4)
    if t.ndim != 2 or t.shape[1] != 4:
        raise ValueError(f"boxes of image {image_index} must have shape (N, 4) xyxy, got {tuple(t.shape)}")
    bad = (~torch.isfinite(t)).any(dim=1).nonzero().flatten()
    if len(bad):
        raise ValueError(f"boxes of image {image_index}: box {int(bad[0])} is not finite: {t[bad[0]].tolist()}")
    inverted = ((t[:, 2] < t[:, 0]) | (t[:, 3] < t[:, 1])).nonzero().flatten()
    if len(inverted):
        i = int(inverted[0])
        raise ValueError(f"boxes of image {image_index}: box {i} has x2 < x1 or y2 < y1 (xyxy expected): "
                         f"{t[i].tolist()}")
    return t
