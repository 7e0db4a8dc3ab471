"""F-ViT-style open-vocabulary detector on a frozen FG-CLIP 2 (F-ViT: docs/official_code.md).

    frozen FGCLIP2ViT --block maps--> neck (simple pyramid + FPN) --> RPN --> RoI head
                      --dense map---------------------------------------> FG-CLIP 2 region scores

The RoI head classifies by cosine against FG-CLIP 2 text embeddings of the class names
(:class:`~.ov_heads.CosineBBoxHead`), so any vocabulary can be scored; at test time its scores are
ensembled with FG-CLIP 2's own region scores, which carry what the frozen model knows about classes
the detector never saw boxed (:class:`~.ov_heads.FGCLIP2OVRoIHead`).

The vocabulary and the base/novel split come from the dataset (``DatasetVocabularyHook`` calls
``set_vocabulary(classes, novel_classes)``, the contract of :mod:`fgclip2_det.openvocab.contract`), or
from ``classes=`` / ``novel_classes=``. At inference any vocabulary works (box regression is
class-agnostic); in training its size must be the box head's ``num_classes``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS

from ..openvocab import OpenVocabularyMixin, Vocabulary

#: F-ViT embeds the word "background" with the class prompts (F-ViT/tools/dump_coco_openclip_feature.py).
BACKGROUND_TEXT = "background"
from .widths import fill_widths


class DetectorFeatures(tuple):
    """The neck's maps as a tuple (what RPN and RoI heads iterate) + ``vlm``, the backbone's
    :class:`~.backbone.ViTFeatureMaps` (dense map and per-image patch grids)."""

    def __new__(cls, maps: Sequence[torch.Tensor], vlm):
        obj = super().__new__(cls, maps)
        obj.vlm = vlm
        return obj


@MODELS.register_module()
class FGCLIP2FViT(OpenVocabularyMixin, TwoStageDetector):
    """``TwoStageDetector`` with a frozen :class:`~.backbone.FGCLIP2ViT` and a text classifier.

    Args:
        classes / novel_classes: vocabulary and its novel part; None -> from the dataset.
        text_classifier: :class:`~fgclip2_det.openvocab.TextClassifier` arguments; ``checkpoint``
            defaults to the backbone's; ``name_style='underscore_to_space'`` prompts LVIS names as
            words ("baby_buggy" -> "baby buggy").
        Other arguments are ``TwoStageDetector``'s.
    """

    def __init__(self, backbone: dict, neck: dict, rpn_head: dict, roi_head: dict, train_cfg: dict,
                 test_cfg: dict, classes: Vocabulary | None = None, novel_classes: Sequence[str] = (),
                 text_classifier: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        neck, roi_head = fill_widths(backbone, neck, roi_head)  # unset widths follow the checkpoint
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not getattr(self.backbone, "with_dense", False):
            raise ValueError("FGCLIP2FViT needs the backbone's dense map (with_dense=True)")
        self.configure_text(text_classifier, self.backbone.checkpoint)
        self.roi_head.region_pooler = self.pool_regions
        ensemble = getattr(self.roi_head, "ensemble", None)
        if ensemble is not None and ensemble.calibration == "sigmoid":
            fgclip2 = self.backbone.fgclip2
            if ensemble.scale is None:
                ensemble.scale = float(fgclip2.logit_scale.exp())
            if ensemble.bias is None:
                ensemble.bias = float(fgclip2.logit_bias)
        self._img_shapes: list | None = None
        if classes is not None:
            self.set_vocabulary(classes, novel_classes)

    # ---------------------------------------------------------------------------- vocabulary
    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        """Into the box head, with the text embedding of the word "background" built like the class
        embeddings (F-ViT's ``class_embed['background']``); the head's size may change only outside
        training (module doc)."""
        background = self.embed_classes([BACKGROUND_TEXT])[0]
        self.roi_head.bbox_head.set_class_embeddings(class_embeds, novel_mask, background, resize=not self.training)

    # ------------------------------------------------------------------------------ features
    @contextmanager
    def _image_shapes(self, data_samples):
        """MMDetection's detectors call ``extract_feat(batch_inputs)`` without the samples; the
        backbone needs each image's unpadded size (backbone module doc), so it is held here."""
        self._img_shapes = [s.img_shape for s in data_samples] if data_samples else None
        try:
            yield
        finally:
            self._img_shapes = None

    def extract_feat(self, batch_inputs: torch.Tensor) -> DetectorFeatures:
        vlm = self.backbone(batch_inputs, img_shapes=self._img_shapes)
        return DetectorFeatures(self.neck(vlm), vlm)

    def loss(self, batch_inputs, batch_data_samples):
        with self._image_shapes(batch_data_samples):
            return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs, batch_data_samples, rescale: bool = True):
        self.require_vocabulary()
        with self._image_shapes(batch_data_samples):
            return super().predict(batch_inputs, batch_data_samples, rescale)

    def _forward(self, batch_inputs, batch_data_samples=None):
        with self._image_shapes(batch_data_samples):
            return super()._forward(batch_inputs, batch_data_samples)

    def pool_regions(self, vlm, rois: torch.Tensor) -> torch.Tensor:
        """(N, D) FG-CLIP 2 region embeddings of RoIs ``(batch index, x1, y1, x2, y2)`` in
        network-input pixels: RoIAlign 1x1 on each image's dense map (``FGCLIP2.pool_regions``)."""
        out = rois.new_zeros(len(rois), self.backbone.embed_dim)
        maps = vlm.image_dense_maps()
        for b, fmap in enumerate(maps):
            idx = (rois[:, 0] == b).nonzero().flatten()
            if len(idx):
                out[idx] = self.backbone.fgclip2.pool_regions([fmap], [rois[idx, 1:]])[0].to(out.dtype)
        return out
