"""F-ViT-style open-vocabulary detector on a frozen FG-CLIP 2 (F-ViT: docs/official_code.md).

    frozen FGCLIP2ViT --block maps--> neck (simple pyramid + FPN) --> RPN --> RoI head
                      --dense map---------------------------------------> FG-CLIP 2 region scores

The RoI head classifies by cosine against FG-CLIP 2 text embeddings of the class names
(:class:`~.ov_heads.CosineBBoxHead`), so any vocabulary can be scored; at test time its scores are
ensembled with FG-CLIP 2's own region scores, which carry what the frozen model knows about classes
the detector never saw boxed (:class:`~.ov_heads.FGCLIP2OVRoIHead`).

The vocabulary and the base/novel split come from the dataset (``DatasetVocabularyHook`` calls
:meth:`FGCLIP2FViT.set_vocabulary` with its ``metainfo``), or from ``classes=`` / ``novel_classes=``.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS

from .text_classifier import TextClassifier, Vocabulary, novel_class_mask


class DetectorFeatures(tuple):
    """The neck's maps as a tuple (what RPN and RoI heads iterate) + ``vlm``, the backbone's
    :class:`~.backbone.ViTFeatureMaps` (dense map and per-image patch grids)."""

    def __new__(cls, maps: Sequence[torch.Tensor], vlm):
        obj = super().__new__(cls, maps)
        obj.vlm = vlm
        return obj


@MODELS.register_module()
class FGCLIP2FViT(TwoStageDetector):
    """``TwoStageDetector`` with a frozen :class:`~.backbone.FGCLIP2ViT` and a text classifier.

    Args:
        classes / novel_classes: vocabulary and its novel part; None -> from the dataset.
        text_classifier: :class:`~.text_classifier.TextClassifier` arguments; ``checkpoint``
            defaults to the backbone's.
        class_name_style: 'underscore_to_space' prompts LVIS names as words ("baby_buggy" ->
            "baby buggy"); 'as_is' uses them unchanged.
        Other arguments are ``TwoStageDetector``'s.
    """

    def __init__(self, backbone: dict, neck: dict, rpn_head: dict, roi_head: dict, train_cfg: dict,
                 test_cfg: dict, classes: Vocabulary | None = None, novel_classes: Sequence[str] = (),
                 text_classifier: dict | None = None, class_name_style: str = "as_is",
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        if class_name_style not in ("as_is", "underscore_to_space"):
            raise ValueError(f"class_name_style must be 'as_is' or 'underscore_to_space', got {class_name_style!r}")
        super().__init__(backbone=backbone, neck=neck, rpn_head=rpn_head, roi_head=roi_head,
                         train_cfg=train_cfg, test_cfg=test_cfg, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not getattr(self.backbone, "with_dense", False):
            raise ValueError("FGCLIP2FViT needs the backbone's dense map (with_dense=True)")
        self.text_cfg = dict(text_classifier or {})
        self.text_cfg.setdefault("checkpoint", self.backbone.checkpoint)
        self.class_name_style = class_name_style
        self.roi_head.region_pooler = self.pool_regions
        ensemble = getattr(self.roi_head, "ensemble", None)
        if ensemble is not None and ensemble.calibration == "sigmoid":
            fgclip2 = self.backbone.fgclip2
            if ensemble.scale is None:
                ensemble.scale = float(fgclip2.logit_scale.exp())
            if ensemble.bias is None:
                ensemble.bias = float(fgclip2.logit_bias)
        self.classes: list | None = None
        self._img_shapes: list | None = None
        if classes is not None:
            self.set_vocabulary(classes, {"novel_classes": tuple(novel_classes)})

    # ---------------------------------------------------------------------------- vocabulary
    def set_vocabulary(self, classes: Vocabulary, metainfo: dict | None = None, resize: bool = False) -> None:
        """Class embeddings of ``classes``; novel = ``metainfo['novel_classes']`` (names of
        ``classes``; a name that is not one of them is an error). ``resize=True`` accepts a
        vocabulary whose size differs from the box head's ``num_classes`` (inference on a free
        vocabulary, e.g. the web demo)."""
        novel = novel_class_mask(classes, metainfo)
        head = self.roi_head.bbox_head
        prompts = [self._prompt_name(c) if isinstance(c, str) else [self._prompt_name(n) for n in c]
                   for c in classes]
        embeds = TextClassifier(**{"device": head.class_embeds.device, **self.text_cfg})(prompts)
        head.set_vocabulary(embeds, novel, resize=resize)
        self.classes = [c if isinstance(c, str) else list(c) for c in classes]

    def _vocabulary_from_dataset_meta(self) -> None:
        """A model from ``mmdet.apis.init_detector`` carries its training set's ``dataset_meta``
        (checkpoint meta) but no text embeddings (buffers are not saved): embed those classes."""
        meta = getattr(self, "dataset_meta", None) or {}
        if not self.roi_head.bbox_head.has_vocabulary and meta.get("classes"):
            self.set_vocabulary(meta["classes"], meta)

    def _prompt_name(self, name: str) -> str:
        return name.replace("_", " ") if self.class_name_style == "underscore_to_space" else name

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
        self._vocabulary_from_dataset_meta()
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
