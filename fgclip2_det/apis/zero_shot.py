"""FG-CLIP 2 alone, training-free: what a checkpoint folder answers without any trained head.

One vision tower stays loaded; class and query embeddings are kept in memory (and on disk by
:class:`~fgclip2_det.openvocab.TextClassifier`: English names get the 80 templates, Chinese names
and free-text queries are used bare). The encoder runs once per image (:meth:`ZeroShotPredictor.features`),
and every answer is FG-CLIP 2's zero-shot rule (:mod:`fgclip2_det.openvocab.scoring`):

* boxes: RoIAlign 1x1 on the dense map, ``softmax(100·cos)`` against the vocabulary, as the official
  box evaluation (fgclip2/eval/coco_box_ddp.py);
* similarity map: ``cos(dense feature, query)`` at every patch;
* segmentation: ``argmax 100·cos(dense feature, class text)`` per patch, upsampled bilinearly to the
  image (``FGCLIP2Segmentor`` with ``decoder=None``);
* detection: boxes around the connected regions where one class wins that argmax, each classified
  as a box (above), boxes scoring below ``score_thr`` dropped and overlaps suppressed (NMS 0.5).

Segmentation and detection return ``DetDataSample``s, as :func:`~.inference.inference_model` does for
the trained models.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData, PixelData

from ..model.checkpoint import CheckpointError
from ..model.image_processor import FGCLIP2ImageProcessor
from ..model.tokenizer import check_attention_mask_option
from ..openvocab import TextClassifier, Vocabulary, dense_cosine, dense_logits, load_fgclip2_tower, zero_shot_probs
from .inputs import MAX_BOXES, InputError, as_vocabulary, check_checkpoint, read_image


@dataclass
class DenseFeatures:
    """One encoder pass over one image."""

    dense: torch.Tensor              # (D, h, w) dense map, one location per 16-px patch of the input
    input_size: tuple[int, int]      # (H', W') the NaFlex-resized network input
    image_size: tuple[int, int]      # (H, W) the image as given
    regions: torch.Tensor | None     # (N, D) L2-normalised embeddings of the boxes given, if any


class ZeroShotPredictor:
    """FG-CLIP 2's training-free answers (module doc) for one checkpoint folder.

    Args:
        checkpoint: FG-CLIP 2 folder (config.json, model.safetensors, tokenizer files).
        max_num_patches: token budget per image; None: the official dynamic budget.
        cache_dir: on-disk text embedding cache (None: the toolkit's default).
        device: where the towers run.
        memory_cache: how many vocabularies' embeddings stay in memory.
        text_attention_mask: 'auto' (default): class and query texts carry the attention mask exactly
            when the checkpoint's tokenizer returns one, as the official box evaluations; True / False
            force it (``TextClassifier``'s ``attention_mask``). The box classifier and FG-OVD configs
            default to the same, so a class scores the same here and there.
    """

    def __init__(self, checkpoint: str | Path, max_num_patches: int | None = None, cache_dir: str | None = None,
                 device: str | torch.device = "cpu", memory_cache: int = 32,
                 text_attention_mask: bool | str = "auto"):
        self.checkpoint = check_checkpoint(checkpoint)
        self.device = torch.device(device)
        try:
            self.text_attention_mask = check_attention_mask_option(text_attention_mask, "text_attention_mask")
        except ValueError as err:
            raise InputError(str(err)) from None
        try:
            self.tower = load_fgclip2_tower(self.checkpoint, "vision", "checkpoint").to(self.device).eval()
        except (CheckpointError, FileNotFoundError) as err:
            raise InputError(f"checkpoint {self.checkpoint}: {err}") from err
        self.processor = FGCLIP2ImageProcessor(max_num_patches)
        text = dict(cache_dir=cache_dir, progress=False, device=self.device, attention_mask=self.text_attention_mask)
        self.class_text = TextClassifier(self.checkpoint, **text)
        self.query_text = TextClassifier(self.checkpoint, templates_en=None, **text)
        self._embeddings: OrderedDict = OrderedDict()
        self._memory_cache = memory_cache

    # ---------------------------------------------------------------------------- text side
    def embeddings(self, vocab: str | Vocabulary, query: bool = False) -> torch.Tensor:
        """(C, D) class embeddings (templates for English names) or bare query embeddings, kept in memory."""
        vocab = as_vocabulary(vocab)
        key = (query, tuple(c if isinstance(c, str) else tuple(c) for c in vocab))
        if key not in self._embeddings:
            try:
                self._embeddings[key] = (self.query_text if query else self.class_text)(vocab)
            except (CheckpointError, FileNotFoundError) as err:  # the text tower, loaded on a cache miss
                raise InputError(f"checkpoint {self.checkpoint}: {err}") from err
            except ValueError as err:  # e.g. two names equal once lower-cased
                raise InputError(f"vocabulary: {err}") from err
            while len(self._embeddings) > self._memory_cache:
                self._embeddings.popitem(last=False)
        self._embeddings.move_to_end(key)
        return self._embeddings[key]

    # -------------------------------------------------------------------------- image side
    @torch.inference_mode()
    def features(self, image, boxes: np.ndarray | None = None) -> DenseFeatures:
        """One encoder pass: the dense map and, for ``boxes`` ((N, 4) xyxy in the image's pixels),
        their region embeddings. ``image``: a file or an (H, W, 3) RGB array."""
        if isinstance(image, (str, Path)):
            image = read_image(image)
        processed = self.processor([image], boxes=None if boxes is None else [boxes])
        feats = self.tower.vision_features([im.to(self.device) for im in processed.images], with_global=False)
        dense = feats.dense_maps[0]
        regions = None
        if boxes is not None:
            regions = self.tower.pool_regions([dense], [b.to(self.device) for b in processed.boxes])[0]
        return DenseFeatures(dense, tuple(processed.sizes[0]), tuple(processed.original_sizes[0]), regions)

    def box_probs(self, feats: DenseFeatures, vocab: str | Vocabulary) -> torch.Tensor:
        """(N, C) ``softmax(100·cos)`` of the boxes of ``feats`` against the vocabulary."""
        return zero_shot_probs(feats.regions, self.embeddings(vocab).to(feats.regions.device)).cpu()

    def classify_boxes(self, image, boxes: np.ndarray, vocab: str | Vocabulary) -> torch.Tensor:
        """(N, C) box probabilities, as the official box evaluation (module doc)."""
        return self.box_probs(self.features(image, boxes), vocab)

    def similarity_map(self, image_or_features, query: str) -> torch.Tensor:
        """(h, w) cosine of every dense feature with a free-text query (bare box-text embedding)."""
        query = query.strip() if query else ""
        if not query:
            raise InputError("Type a text query for the heat map, e.g. \"a red car\" or \"红色的汽车\".")
        feats = image_or_features if isinstance(image_or_features, DenseFeatures) else self.features(image_or_features)
        return dense_cosine(feats.dense, self.embeddings([query], query=True).to(feats.dense.device))[0].cpu()

    @torch.inference_mode()
    def segment(self, image, vocab: str | Vocabulary) -> DetDataSample:
        """``pred_sem_seg`` (1, H, W) vocabulary indices and ``seg_logits`` (C, H, W) ``100·cos``."""
        feats = self.features(image)
        logits = dense_logits(feats.dense, self.embeddings(vocab).to(feats.dense.device))
        logits = F.interpolate(logits[None], size=feats.image_size, mode="bilinear", align_corners=False)[0].cpu()
        sample = DetDataSample(metainfo=dict(ori_shape=feats.image_size, img_shape=feats.input_size))
        sample.seg_logits = PixelData(data=logits)
        sample.pred_sem_seg = PixelData(sem_seg=logits.argmax(dim=0)[None])
        return sample

    @torch.inference_mode()
    def detect(self, image, vocab: str | Vocabulary, score_thr: float = 0.3, iou_thr: float = 0.5,
               max_boxes: int = MAX_BOXES) -> DetDataSample:
        """``pred_instances`` (bboxes in the image's pixels, labels, scores), best first (module doc)."""
        import cv2
        from mmcv.ops import nms

        feats = self.features(image)
        text = self.embeddings(vocab).to(feats.dense.device)
        winner = dense_cosine(feats.dense, text).argmax(dim=0).cpu().numpy()
        cells = []  # component boxes in patch units
        for c in np.unique(winner):
            count, _, stats, _ = cv2.connectedComponentsWithStats((winner == c).astype(np.uint8), connectivity=4)
            cells += [[x, y, x + w, y + h] for x, y, w, h, _area in stats[1:count]]
        sample = DetDataSample(metainfo=dict(ori_shape=feats.image_size, img_shape=feats.input_size))
        sample.pred_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long),
                                             scores=torch.zeros(0))
        if not cells:
            return sample
        cells = torch.tensor(cells, dtype=torch.float32)
        (ph, pw), (sh, sw), (ih, iw) = winner.shape, feats.input_size, feats.image_size
        # classified where FG-CLIP 2 sees them (network-input pixels), reported in the image's pixels
        in_input = cells * torch.tensor([sw / pw, sh / ph] * 2)
        regions = self.tower.pool_regions([feats.dense], [in_input.to(self.device)])[0]
        scores, labels = zero_shot_probs(regions, text).cpu().max(dim=-1)
        boxes = cells * torch.tensor([iw / pw, ih / ph] * 2)
        keep = scores >= score_thr
        if keep.any():
            boxes, scores, labels = boxes[keep], scores[keep].float(), labels[keep]
            _, order = nms(boxes, scores, iou_threshold=iou_thr)
            order = order[:max_boxes]
            sample.pred_instances = InstanceData(bboxes=boxes[order], labels=labels[order], scores=scores[order])
        return sample
