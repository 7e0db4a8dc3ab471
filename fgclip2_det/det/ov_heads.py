"""RoI head of the open-vocabulary detector (F-ViT style, docs/official_code.md).

* :class:`CosineBBoxHead` classifies a proposal by the cosine between its projected RoI feature and
  the FG-CLIP 2 text embeddings of the class names (plus a background embedding), times a learnable
  temperature; novel classes are out of the training softmax and get loss weight 0 (F-ViT), and box
  regression is class-agnostic (a novel class
  has no regressor of its own to learn).
* :class:`RegionScoreEnsemble` turns FG-CLIP 2 region scores (RoIAlign 1x1 on the dense map) into
  probabilities and combines them with the detector's by a geometric mean with weight ``alpha`` on
  base and ``beta`` on novel classes. Two rules:

  - ``rule='fvit'`` (default), F-ViT exactly (CLIPSelf ``F-ViT/models/fvit_head.py``,
    ``FViTBBoxHead.forward``): the detector's logits and FG-CLIP 2's ``T * cos`` against the class
    embeddings *and the text embedding of the word "background"* are each softmaxed over C + 1;
    background counts as a base class (weight ``alpha``); the products are the final scores, not
    renormalised (the box head hands them to NMS as they are);
  - ``rule='fvlm'``: softmax over the C classes on the FG-CLIP 2 side, background from the detector,
    the result renormalised by the box head's softmax (F-VLM's rule; what this project used before).
* :class:`FGCLIP2OVRoIHead` applies the ensemble at test time, where the proposals are known.

Calibration of FG-CLIP 2 scores. FG-CLIP 2 is trained with a sigmoid loss, so its cosines are not
probabilities. ``calibration='softmax'`` (default) uses softmax(T * cos); the temperature is a config
value: the class default is 100 (FG-CLIP 2's own box-classification protocol, official
fgclip2/eval/coco_box_ddp.py); the OV-COCO / OV-LVIS configs use F-ViT's 75 / 50, since on the synthetic
world 100 gave the lowest base and novel AP50 of 50 / 75 / 100 (README, docs/recipes.md).
``calibration='sigmoid'`` (``rule='fvlm'`` only) uses sigmoid(scale * cos + bias) per class, with the
checkpoint's ``logit_scale.exp()`` and ``logit_bias`` unless given.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from mmengine.structures import InstanceData
from torch import nn

from ..openvocab import BOX_TEMPERATURE, cosine


#: The training logit of a novel class: out of the softmax (see CosineBBoxHead.loss); fits in fp16.
NOVEL_LOGIT = -1e4


@MODELS.register_module()
class CosineBBoxHead(ConvFCBBoxHead):
    """ConvFC box head whose classifier is ``T * cos(proj(x), [text embeddings; background])``.

    Args:
        embed_dim: FG-CLIP 2 embedding width (the text embeddings' dimension).
        temperature: initial T (F-ViT: 50); learnable unless ``learn_temperature=False``.
        background: 'text' (the FG-CLIP 2 text embedding of the word "background", built like the
            class embeddings and fixed, as F-ViT's ``class_embed['background']``), 'learn' (a trainable
            embedding) or 'zero' (logit 0: background wins when no class is similar enough).
        background_weight: loss weight of background proposals (F-ViT: 0.6 on OV-COCO, 0.9 on
            OV-LVIS; the configs set them).
        Other arguments are those of MMDetection's ``ConvFCBBoxHead``; F-ViT uses 4 shared convs
        and 2 shared FCs, the defaults here.

    The class embeddings and the novel-class mask come from :meth:`set_class_embeddings` (the
    detector's ``set_vocabulary`` calls it); they are buffers, not saved in checkpoints.
    """

    def __init__(self, embed_dim: int, temperature: float = 50.0, learn_temperature: bool = True,
                 background: str = "learn", background_weight: float = 1.0,
                 num_shared_convs: int = 4, num_shared_fcs: int = 2, reg_class_agnostic: bool = True,
                 **kwargs):
        if background not in ("text", "learn", "zero"):
            raise ValueError(f"background must be 'text', 'learn' or 'zero', got {background!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        super().__init__(num_shared_convs=num_shared_convs, num_shared_fcs=num_shared_fcs,
                         reg_class_agnostic=reg_class_agnostic, **kwargs)
        self.embed_dim = int(embed_dim)
        # fc_cls now projects into the text space; the logits are cosines (forward).
        self.fc_cls = nn.Linear(self.cls_last_dim, self.embed_dim)
        log_t = torch.tensor(math.log(temperature))
        self.log_temperature = nn.Parameter(log_t, requires_grad=learn_temperature)
        self.background = background
        self.background_embed = nn.Parameter(torch.randn(self.embed_dim) * 0.02) if background == "learn" else None
        self.background_weight = float(background_weight)
        self.register_buffer("class_embeds", torch.zeros(self.num_classes, self.embed_dim), persistent=False)
        self.register_buffer("novel_mask", torch.zeros(self.num_classes, dtype=torch.bool), persistent=False)
        # The text embedding of "background": the detector's background with background='text', and
        # FG-CLIP 2's background in the F-ViT ensemble.
        self.register_buffer("text_background", torch.zeros(self.embed_dim), persistent=False)
        self.has_vocabulary = False
        self.final_scores = False  # set by FGCLIP2OVRoIHead when its ensemble's scores are final

    def set_class_embeddings(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor,
                             background_embed: torch.Tensor | None = None, resize: bool = False) -> None:
        """``background_embed``: the text embedding of "background" (needed by background='text' and
        the F-ViT ensemble). ``resize=True`` takes a vocabulary of any size (a trained detector on a
        user's own class list): no weight depends on the number of classes when box regression is
        class-agnostic."""
        if resize and class_embeds.ndim == 2 and class_embeds.shape[1] == self.embed_dim:
            if not self.reg_class_agnostic:
                raise ValueError("a vocabulary of another size needs class-agnostic box regression "
                                 "(reg_class_agnostic=True): fc_reg has 4 outputs per trained class")
            self.num_classes = len(class_embeds)
        if tuple(class_embeds.shape) != (self.num_classes, self.embed_dim):
            raise ValueError(f"the box head was built for num_classes={self.num_classes} (embed_dim "
                             f"{self.embed_dim}) but got class embeddings of shape {tuple(class_embeds.shape)}: "
                             "set model.roi_head.bbox_head.num_classes to the dataset's number of classes")
        self.class_embeds = F.normalize(class_embeds.float(), dim=-1).to(self.class_embeds.device)
        self.novel_mask = novel_mask.to(device=self.class_embeds.device, dtype=torch.bool)
        if background_embed is not None:
            self.text_background = F.normalize(background_embed.float(), dim=-1).to(self.class_embeds.device)
        elif self.background == "text":
            raise ValueError("background='text' needs the text embedding of 'background' (background_embed)")
        self.has_vocabulary = True

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.has_vocabulary:
            raise RuntimeError("CosineBBoxHead has no class embeddings: the detector's set_vocabulary "
                               "must run first (custom_hooks=[dict(type='DatasetVocabularyHook')])")
        projected, bbox_pred = super().forward(x)
        region = F.normalize(projected, dim=-1)
        class_logits = region @ self.class_embeds.t()
        if self.background == "zero":
            bg_logits = class_logits.new_zeros(len(region), 1)
        else:
            bg = self.text_background if self.background == "text" else self.background_embed
            bg_logits = region @ F.normalize(bg, dim=0)[:, None]
        return self.temperature * torch.cat([class_logits, bg_logits], dim=1), bbox_pred

    def _predict_by_feat_single(self, roi, cls_score, bbox_pred, img_meta, rescale=False, rcnn_test_cfg=None):
        """MMDetection's post-processing, except that final ensemble scores (``final_scores``, F-ViT)
        are used as they are: mmdet's softmax would renormalise them (F-ViT's ``get_bboxes`` does not)."""
        if not self.final_scores or roi.shape[0] == 0:
            return super()._predict_by_feat_single(roi, cls_score, bbox_pred, img_meta, rescale, rcnn_test_cfg)
        num_classes = 1 if self.reg_class_agnostic else self.num_classes
        bboxes = self.bbox_coder.decode(roi.repeat_interleave(num_classes, dim=0)[:, 1:],
                                        bbox_pred.view(-1, self.bbox_coder.encode_size),
                                        max_shape=img_meta["img_shape"])
        if rescale:
            bboxes = scale_boxes(bboxes, [1 / s for s in img_meta["scale_factor"]])
        bboxes = get_box_tensor(bboxes).view(roi.shape[0], -1)
        results = InstanceData()
        if rcnn_test_cfg is None:  # the scores of every class, as mmdet returns them here
            results.bboxes, results.scores = bboxes, cls_score
            return results
        det_bboxes, det_labels = multiclass_nms(bboxes, cls_score, rcnn_test_cfg.score_thr, rcnn_test_cfg.nms,
                                                rcnn_test_cfg.max_per_img, box_dim=4)
        results.bboxes, results.scores, results.labels = det_bboxes[:, :-1], det_bboxes[:, -1], det_labels
        return results

    def class_loss_weights(self) -> torch.Tensor:
        """(C + 1,) weight per target class: 0 for novel classes, ``background_weight`` last."""
        weights = (~self.novel_mask).float()
        return torch.cat([weights, weights.new_tensor([self.background_weight])])

    def loss(self, cls_score, bbox_pred, rois, labels, label_weights, bbox_targets, bbox_weights,
             reduction_override=None) -> dict:
        """MMDetection's loss with every proposal's weight times its target class's weight, so a
        novel-labelled proposal (should one slip through) contributes nothing, and with the novel
        classes out of the softmax, as F-ViT's ``CustomCrossEntropyLoss`` (CLIPSelf
        F-ViT/models/custom_losses.py: logits of zero-weight classes set to -inf): training never
        pushes a novel class's score down. A large finite value stands for -inf, so that a
        novel-labelled proposal gives 0 x finite rather than 0 x inf = NaN."""
        label_weights = label_weights * self.class_loss_weights().to(labels.device)[labels]
        out_of_softmax = torch.cat([self.novel_mask, self.novel_mask.new_zeros(1)]).to(cls_score.device)
        cls_score = cls_score.masked_fill(out_of_softmax, NOVEL_LOGIT)
        return super().loss(cls_score, bbox_pred, rois, labels, label_weights, bbox_targets,
                            bbox_weights, reduction_override)


class RegionScoreEnsemble(nn.Module):
    """Detector logits (N, C + 1) + FG-CLIP 2 region embeddings (N, D) -> ensembled scores (N, C + 1).

    p_k = p_det,k^(1 - w_k) * p_clip,k^w_k with w_k = ``alpha`` for base and ``beta`` for novel
    classes. ``rule='fvit'``: both sides softmaxed over C + 1 (FG-CLIP 2's side against the class
    embeddings and the "background" text embedding), background a base class, probabilities
    returned as they are. ``rule='fvlm'``: FG-CLIP 2 softmaxed over C, p_bg = p_det,bg, returned as
    log p for the box head's softmax to renormalise (module doc).
    """

    def __init__(self, alpha: float = 0.1, beta: float = 0.8, rule: str = "fvit", calibration: str = "softmax",
                 temperature: float = BOX_TEMPERATURE, scale: float | None = None, bias: float | None = None):
        super().__init__()
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if rule not in ("fvit", "fvlm"):
            raise ValueError(f"rule must be 'fvit' or 'fvlm', got {rule!r}")
        if calibration not in ("softmax", "sigmoid"):
            raise ValueError(f"calibration must be 'softmax' or 'sigmoid', got {calibration!r}")
        if rule == "fvit" and calibration != "softmax":
            raise ValueError("rule='fvit' softmaxes FG-CLIP 2's scores over the classes and background; "
                             "calibration='sigmoid' goes with rule='fvlm'")
        self.alpha, self.beta = float(alpha), float(beta)
        self.rule = rule
        self.calibration = calibration
        self.temperature = float(temperature)
        self.scale, self.bias = scale, bias

    @property
    def final_scores(self) -> bool:
        """Whether the output is the final probabilities (F-ViT) rather than logits to softmax."""
        return self.rule == "fvit"

    def region_probs(self, regions: torch.Tensor, class_embeds: torch.Tensor) -> torch.Tensor:
        """(N, K) FG-CLIP 2 probabilities of L2-normalised region embeddings over the K embeddings."""
        cos = cosine(regions, class_embeds)
        if self.calibration == "softmax":
            return (self.temperature * cos).softmax(dim=-1)
        if self.scale is None or self.bias is None:
            raise ValueError("calibration='sigmoid' needs scale and bias (the detector fills them from "
                             "the checkpoint's logit_scale / logit_bias)")
        return torch.sigmoid(self.scale * cos + self.bias)

    def forward(self, det_logits: torch.Tensor, regions: torch.Tensor, class_embeds: torch.Tensor,
                novel_mask: torch.Tensor, background_embed: torch.Tensor | None = None) -> torch.Tensor:
        det = det_logits.float().softmax(dim=-1)
        novel = novel_mask.to(det.device)
        if self.rule == "fvit":
            if background_embed is None:
                raise ValueError("rule='fvit' needs the text embedding of 'background' (background_embed)")
            clip = self.region_probs(regions, torch.cat([class_embeds, background_embed.reshape(1, -1)]))
            w = torch.where(torch.cat([novel, novel.new_zeros(1)]), self.beta, self.alpha)
            return det ** (1 - w) * clip ** w
        clip = self.region_probs(regions, class_embeds)
        w = torch.where(novel, self.beta, self.alpha)
        eps = torch.finfo(torch.float32).tiny
        fg = det[:, :-1].clamp_min(eps).log() * (1 - w) + clip.clamp_min(eps).log() * w
        return torch.cat([fg, det[:, -1:].clamp_min(eps).log()], dim=1)


@MODELS.register_module()
class FGCLIP2OVRoIHead(StandardRoIHead):
    """``StandardRoIHead`` + the FG-CLIP 2 region-score ensemble at test time.

    Args:
        ensemble: :class:`RegionScoreEnsemble` arguments, or None for detector scores only.
        Other arguments are ``StandardRoIHead``'s; use a class-agnostic mask head for novel classes.

    The detector hands its features with the backbone output attached (``x.vlm``), whose
    dense map is pooled at every proposal exactly as FG-CLIP 2 pools a box.
    """

    def __init__(self, *args, ensemble: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ensemble = RegionScoreEnsemble(**ensemble) if ensemble is not None else None
        self.region_pooler = None  # set by the detector: (vlm features, rois) -> (N, D)

    def _bbox_forward(self, x: Sequence[torch.Tensor], rois: torch.Tensor) -> dict:
        results = super()._bbox_forward(x, rois)
        # Whether these scores are final (F-ViT's ensemble: the box head must not softmax them), decided
        # per call: the ensemble may be switched off at run time (detector-only evaluation).
        self.bbox_head.final_scores = not self.training and self.ensemble is not None and self.ensemble.final_scores
        if self.training or self.ensemble is None:
            return results
        if self.region_pooler is None or getattr(x, "vlm", None) is None:
            raise RuntimeError("the FG-CLIP 2 ensemble needs the detector's backbone features; build "
                               "FGCLIP2OVRoIHead inside FGCLIP2FViT")
        regions = self.region_pooler(x.vlm, rois)
        head = self.bbox_head
        results["cls_score"] = self.ensemble(results["cls_score"], regions, head.class_embeds, head.novel_mask,
                                             head.text_background)
        return results
