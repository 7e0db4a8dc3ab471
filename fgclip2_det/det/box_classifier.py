"""Box classification with FG-CLIP 2 (COCO / LVIS / BoxClass-CN) for ``Runner.test``, as the official
box evaluations (fgclip2/eval/coco_box_ddp.py, fgclip2/eval/in1k/{lvis,laion_cn}_box_cls_ddp.py).

Per image: the encoder runs once, each GT box is pooled from the dense map (``region_model``), and
its scores are softmax(100 * cos) against the class embeddings (``fgclip2_det.openvocab``). Equal, box for
box, to the official per-box procedure, which re-runs the encoder for every box on the same input.

The vocabulary comes from ``classes=`` or, in configs, from the evaluated dataset through
``DatasetVocabularyHook``. Predictions per box (``pred_instances``): ``labels`` / ``scores`` = top-1
(ties -> lowest class index), ``topk_labels`` / ``topk_scores`` (N, k) (ties in index order),
``bboxes`` = the GT boxes in original-image pixels, and with ``return_all_scores=True`` the full
(N, C) ``all_scores`` (memory: LVIS has 1203 classes; the metric needs only the top-k).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from ..openvocab import BOX_TEMPERATURE, Vocabulary, zero_shot_logits
from .region_model import FGCLIP2RegionModel


@MODELS.register_module()
class FGCLIP2BoxClassifier(FGCLIP2RegionModel):
    """Args:
        backbone: ``FGCLIP2ViT`` config (its ``checkpoint`` also feeds the text classifier).
        classes: vocabulary (names or synonym lists, EN/ZH); None -> set later by
            ``set_vocabulary`` (``DatasetVocabularyHook`` does it from the dataset).
        text_classifier: keyword arguments of :class:`TextClassifier` (language, templates_en,
            cache_dir, ...); ``checkpoint`` defaults to the backbone's, ``device`` to the model's.
        temperature: softmax temperature (official 100).
        topk: width of ``topk_labels`` / ``topk_scores`` (clipped to the vocabulary size).
        return_all_scores: also store the (N, C) scores.
    """

    def __init__(self, backbone: dict, classes: Vocabulary | None = None, text_classifier: dict | None = None,
                 temperature: float = BOX_TEMPERATURE, topk: int = 5, return_all_scores: bool = False,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(backbone, temperature, data_preprocessor, init_cfg)
        if not (isinstance(topk, int) and topk >= 1):
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        self.topk = topk
        self.return_all_scores = return_all_scores
        self.configure_text(text_classifier, self.backbone.checkpoint)
        # Not persistent: the vocabulary belongs to the evaluated dataset, not to the checkpoint.
        self.register_buffer("class_embeds", torch.zeros(0, self.backbone.embed_dim), persistent=False)
        if classes is not None:
            self.set_vocabulary(classes)

    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        self.class_embeds = class_embeds.to(self.class_embeds.device)

    def class_logits(self, regions: torch.Tensor) -> torch.Tensor:
        return zero_shot_logits(regions, self.class_embeds, self.temperature)

    def predict(self, inputs: torch.Tensor, data_samples, rescale: bool = True):
        self.require_vocabulary()
        for sample, regions in zip(data_samples, self.region_embeddings(inputs, data_samples)):
            probs = self.class_logits(regions).softmax(dim=-1)
            inst = self.instances(sample, probs, rescale)
            k = min(self.topk, probs.shape[1])
            top_scores, top_labels = probs.sort(dim=-1, descending=True, stable=True)
            inst.topk_labels, inst.topk_scores = top_labels[:, :k], top_scores[:, :k]
            if self.return_all_scores:
                inst.all_scores = probs
            sample.pred_instances = inst
        return data_samples

    def loss(self, inputs: torch.Tensor, data_samples) -> dict[str, torch.Tensor]:
        """Cross-entropy of the class logits of every GT box (fine-tunes trainable backbone blocks)."""
        self.require_vocabulary()
        regions = torch.cat(self.region_embeddings(inputs, data_samples))
        labels = torch.cat([s.gt_instances.labels for s in data_samples]).to(regions.device)
        logits = self.class_logits(regions)
        if len(labels) == 0:  # a batch without boxes: a zero that keeps the graph
            return {"loss_boxclass": logits.sum() * 0.0}
        return {"loss_boxclass": F.cross_entropy(logits, labels)}
