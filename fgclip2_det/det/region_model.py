"""Shared part of the box classifier and the caption ranker: GT boxes -> region embeddings.

The encoder runs once per image; every box goes through RoIAlign 1x1 (aligned) on that image's
dense map, cropped to its own patch grid (so sampling never reads batch padding), then L2
(``FGCLIP2.pool_regions``). Boxes are ``gt_instances.bboxes`` in the pixels of the network input
(after ``NaFlexResize``); a box maps to the grid by x / 16 = x / W' * w, the official mapping.

Box handling: a non-finite or inverted box is an error naming the image and the box; a zero-width
or zero-height box gets a zero region vector, so all its scores tie (softmax = uniform) and the
top-1 is the first class / caption; boxes reaching outside the image are allowed (RoIAlign reads
zeros outside the map, as in the official code).
"""
from __future__ import annotations

import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from mmdet.registry import MODELS

from ..model.boxes import check_boxes
from ..openvocab import BOX_TEMPERATURE, OpenVocabularyMixin, first_max


class FGCLIP2RegionModel(OpenVocabularyMixin, BaseModel):
    """Backbone + data preprocessor + region embeddings; subclasses score the regions."""

    def __init__(self, backbone: dict, temperature: float = BOX_TEMPERATURE, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None):
        if isinstance(data_preprocessor, dict):  # mmdet registry: works with no default scope set too
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if not getattr(self.backbone, "with_dense", False):
            raise ValueError("region scoring needs the dense map: build the backbone with with_dense=True")
        self.temperature = float(temperature)

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "tensor":
            return tuple(self.region_embeddings(inputs, data_samples))
        raise ValueError(f"invalid mode {mode!r}; expected 'predict', 'loss' or 'tensor'")

    # ------------------------------------------------------------------------------- regions
    def region_embeddings(self, inputs: torch.Tensor, data_samples) -> list[torch.Tensor]:
        """Per image (N_i, D) L2-normalised region embeddings of its GT boxes."""
        boxes = [gt_boxes(s) for s in data_samples]
        feats = self.backbone(inputs, img_shapes=[s.img_shape for s in data_samples])
        return self.backbone.fgclip2.pool_regions(feats.image_dense_maps(), boxes)

    def instances(self, sample, probs: torch.Tensor, rescale: bool = True) -> InstanceData:
        """Top-1 label/score per box; bboxes = the GT boxes (original-image pixels if ``rescale``)."""
        boxes = gt_boxes(sample).to(probs.device)
        if rescale:
            w_scale, h_scale = sample.metainfo.get("scale_factor", (1.0, 1.0))
            boxes = boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
        top_scores, top_labels = first_max(probs)
        return InstanceData(bboxes=boxes, labels=top_labels, scores=top_scores)


def gt_boxes(sample) -> torch.Tensor:
    """(N, 4) float32 xyxy GT boxes of a data sample, validated; errors name the image and box."""
    boxes = sample.gt_instances.bboxes
    boxes = boxes.tensor if hasattr(boxes, "tensor") else torch.as_tensor(boxes)
    where = sample.metainfo.get("img_path", sample.metainfo.get("img_id", "<image>"))
    return check_boxes(boxes.reshape(-1, 4), str(where)).to(boxes.device, torch.float32)
