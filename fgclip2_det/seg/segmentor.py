"""Open-vocabulary semantic segmentation on FG-CLIP 2's dense features.

Two ways to turn the text-aligned dense map into per-pixel classes, same model and configs:

* training-free (``decoder=None``): softmax(T * cos(dense feature, class text embedding)) at every
  patch (``fgclip2_det.openvocab.scoring.dense_logits``), upsampled bilinearly to the image; optionally pixels whose best probability is below
  ``background_threshold`` go to ``background_index`` (for vocabularies with a background class);
  ``dense_mode`` picks the dense features: the official dense head (``'head'``, the default) or a
  ClearCLIP / SCLIP / NACLIP-style surgery of the dense head or last block
  (``fgclip2_det.openvocab.dense_surgery``, every variant defined there);
* a :class:`~.cost_aggregation.CostAggregationDecoder` trained on the seen classes, which decodes the
  cost volume and so applies to any vocabulary at test time.

The vocabulary and its novel classes come from the dataset (``DatasetVocabularyHook``); in training,
novel classes are left out of the softmax (their pixels are ignore-labelled in the synthetic world
and absent from COCO-Stuff), so the decoder never learns from their names.

Inference is ``whole`` (each image at its size) or ``slide`` (``crop_size`` windows every ``stride``
pixels, logits averaged where windows overlap, as mmseg), for images larger than the model is
comfortable with.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmdet.registry import MODELS

from ..openvocab import BOX_TEMPERATURE, OpenVocabularyMixin, Vocabulary, dense_logits
from ..openvocab.dense_surgery import backbone_dense, resolve_dense_mode
from .cost_aggregation import CostAggregationDecoder
from .label_maps import checked_label_map


@MODELS.register_module()
class FGCLIP2Segmentor(OpenVocabularyMixin, BaseModel):
    """Args:
        backbone: ``FGCLIP2ViT`` config; with a decoder, ``out_indices`` gives its two guidance maps
            (coarse guidance first).
        decoder: :class:`CostAggregationDecoder` arguments (``embed_dim`` / ``guidance_dim`` default
            to the backbone's width), or None for training-free segmentation.
        text_classifier: :class:`TextClassifier` arguments; ``checkpoint`` defaults to the
            backbone's; ``kind`` 'box' by default (the dense head is trained against box texts).
        temperature: T of the training-free softmax (FG-CLIP 2's box protocol: 100).
        background_threshold / background_index: training-free background rule (see module doc).
        dense_mode: training-free only: a name of ``dense_surgery.DENSE_MODES``; 'head' (default) is
            the official dense head, unchanged.
        test_cfg: ``dict(mode='whole')`` or ``dict(mode='slide', crop_size=(h, w), stride=(h, w))``.
        ignore_index: label of pixels without a class.
    """

    def __init__(self, backbone: dict, decoder: dict | None = None, text_classifier: dict | None = None,
                 classes: Vocabulary | None = None, temperature: float = BOX_TEMPERATURE,
                 background_threshold: float | None = None, background_index: int = 0,
                 test_cfg: dict | None = None, ignore_index: int = 255, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None, dense_mode: str = "head"):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if not getattr(self.backbone, "with_dense", False):
            raise ValueError("segmentation needs the backbone's dense map (with_dense=True)")
        self.decoder = None
        if decoder is not None:
            if len(self.backbone.out_indices) != 2:
                raise ValueError("the cost-aggregation decoder takes two guidance maps: set "
                                 f"backbone.out_indices to two blocks, got {self.backbone.out_indices}")
            dim = self.backbone.embed_dim
            self.decoder = CostAggregationDecoder(**{"embed_dim": dim, "guidance_dim": dim, **decoder})
        surgery = resolve_dense_mode(dense_mode)
        if self.decoder is not None and not surgery.is_official:
            raise ValueError(f"dense_mode={dense_mode!r} is for training-free segmentation (decoder=None); "
                             "a decoder reads the official dense head it was trained on")
        self.dense_mode = dense_mode
        self.dense_surgery = None if surgery.is_official else surgery
        self.configure_text(text_classifier, self.backbone.checkpoint, kind="box")
        self.temperature = float(temperature)
        self.background_threshold = background_threshold
        self.background_index = int(background_index)
        self.test_cfg = dict(test_cfg or {"mode": "whole"})
        if self.test_cfg.get("mode", "whole") not in ("whole", "slide"):
            raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {self.test_cfg.get('mode')!r}")
        self.ignore_index = int(ignore_index)
        self.register_buffer("class_embeds", torch.zeros(0, self.backbone.embed_dim), persistent=False)
        self.register_buffer("novel_mask", torch.zeros(0, dtype=torch.bool), persistent=False)
        if classes is not None:
            self.set_vocabulary(classes)

    # ---------------------------------------------------------------------------- vocabulary
    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        """Novel classes are excluded from the training loss (module doc)."""
        self.class_embeds = class_embeds.to(self.class_embeds.device)
        self.novel_mask = novel_mask.to(self.class_embeds.device)

    # ------------------------------------------------------------------------------- logits
    def logits(self, inputs: torch.Tensor, img_shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """(B, K, H, W) class logits at the input's (padded) resolution."""
        if self.dense_surgery is not None:  # training-free only (checked in __init__)
            dense = backbone_dense(self.backbone, inputs, img_shapes, self.dense_surgery)
            out = dense_logits(dense, self.class_embeds, self.temperature)
            return F.interpolate(out, size=inputs.shape[-2:], mode="bilinear", align_corners=False)
        feats = self.backbone(inputs, img_shapes=img_shapes)
        if self.decoder is None:
            out = dense_logits(feats.dense, self.class_embeds, self.temperature)
        else:
            out = self.decoder(feats.dense, self.class_embeds, list(feats))
        return F.interpolate(out, size=inputs.shape[-2:], mode="bilinear", align_corners=False)

    def image_logits(self, image: torch.Tensor, img_shape: tuple[int, int]) -> torch.Tensor:
        """(K, h, w) logits of one (3, H, W) input whose real part is ``img_shape``."""
        h, w = int(img_shape[0]), int(img_shape[1])
        image = image[:, :h, :w]
        if self.test_cfg.get("mode", "whole") == "whole":
            return self.logits(image[None], [(h, w)])[0, :, :h, :w]
        return self.slide_logits(image)

    def slide_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Windows of ``crop_size`` every ``stride`` (the last one flush with the border), logits
        averaged where they overlap."""
        ch, cw = self.test_cfg["crop_size"]
        sh, sw = self.test_cfg["stride"]
        _, h, w = image.shape
        out = image.new_zeros(len(self.class_embeds), h, w)
        count = image.new_zeros(1, h, w)
        for y in _window_starts(h, ch, sh):
            for x in _window_starts(w, cw, sw):
                crop = image[:, y:y + ch, x:x + cw]
                ih, iw = crop.shape[-2:]
                out[:, y:y + ih, x:x + iw] += self.logits(crop[None], [(ih, iw)])[0, :, :ih, :iw]
                count[:, y:y + ih, x:x + iw] += 1
        return out / count

    # --------------------------------------------------------------------------------- modes
    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        self.require_vocabulary()
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            shapes = [s.img_shape for s in data_samples] if data_samples else [inputs.shape[-2:]] * len(inputs)
            return self.logits(inputs, shapes)
        raise ValueError(f"invalid mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: torch.Tensor, data_samples) -> dict[str, torch.Tensor]:
        """Pixel cross-entropy over the base classes; ignore-labelled, novel-class and padding pixels
        excluded."""
        k = len(self.class_embeds)
        labels = torch.stack([checked_label_map(s, inputs.shape[-2:], k, self.ignore_index)
                              for s in data_samples]).to(inputs.device)
        novel = self.novel_mask.to(inputs.device)
        # Novel classes are out of the softmax, and their pixels (should a map label them) out of
        # the loss: the decoder never learns from a novel class.
        labelled = labels != self.ignore_index
        labels = torch.where(labelled & novel[labels.clamp(0, len(novel) - 1)], self.ignore_index, labels)
        logits = self.logits(inputs, [s.img_shape for s in data_samples])
        logits = logits.masked_fill(novel[None, :, None, None], float("-inf"))
        if not (labels != self.ignore_index).any():  # nothing labelled: a zero that keeps the graph
            return {"loss_seg": logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0}
        return {"loss_seg": F.cross_entropy(logits, labels, ignore_index=self.ignore_index)}

    def predict(self, inputs: torch.Tensor, data_samples, rescale: bool = True):
        for image, sample in zip(inputs, data_samples):
            logits = self.image_logits(image, sample.img_shape)
            if rescale and "ori_shape" in sample.metainfo:
                logits = F.interpolate(logits[None], size=tuple(sample.ori_shape), mode="bilinear",
                                       align_corners=False)[0]
            labels = logits.argmax(dim=0)
            if self.decoder is None and self.background_threshold is not None:
                best = logits.softmax(dim=0).amax(dim=0)
                labels = torch.where(best < self.background_threshold, self.background_index, labels)
            sample.seg_logits = PixelData(data=logits)
            sample.pred_sem_seg = PixelData(sem_seg=labels[None], metainfo=dict(ignore_index=self.ignore_index))
        return data_samples


def _window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window origins along one side: every ``stride``, the last flush with the end."""
    if crop <= 0 or stride <= 0:
        raise ValueError(f"crop_size and stride must be positive, got {crop}, {stride}")
    if size <= crop:
        return [0]
    n = math.ceil((size - crop) / stride) + 1
    return sorted({min(i * stride, size - crop) for i in range(n)})
