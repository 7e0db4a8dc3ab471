"""Inference behind the web demo (``tools/serve_demo.py``), kept free of any web library.

One FG-CLIP 2 vision tower stays loaded; vocabularies' text embeddings are kept in memory between
requests (and on disk by :class:`TextClassifier`). Detection and segmentation use an MMDetection
model when one is given (``FGCLIP2FViT`` / ``FGCLIP2Segmentor`` config + weights), else FG-CLIP 2
alone, training-free:

* segmentation: ``argmax softmax(100·cos(dense feature, class text))`` per patch, upsampled
  (``FGCLIP2Segmentor`` with ``decoder=None``);
* detection: boxes around the connected regions where one class wins that argmax, each then
  classified as FG-CLIP 2 classifies boxes (RoIAlign 1x1 on the dense map, ``softmax(100·cos)``),
  overlapping boxes suppressed (NMS 0.5).

Bad input raises :class:`InputError` with a message meant for the page.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ..det.text_classifier import TextClassifier
from ..det.towers import load_fgclip2_tower
from ..model.image_processor import FGCLIP2ImageProcessor
from .drawing import draw_colour_bar, heatmap_overlay, packaged_cjk_font, system_cjk_font

MAX_PIXELS = 4096 * 4096
MAX_CLASSES = 300
MAX_BOXES = 100
TEMPERATURE = 100.0  # FG-CLIP 2's box-classification softmax


class InputError(ValueError):
    """A problem with what the user gave, worded for the page."""


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    label: str
    score: float


# ------------------------------------------------------------------------------------- inputs
def parse_vocabulary(text: str | None) -> list[str]:
    """Names separated by commas (also '，'), semicolons or new lines; duplicates dropped."""
    names, seen = [], set()
    for name in re.split(r"[,，;；\n]", text or ""):
        name = name.strip()
        if name and name.lower() not in seen:
            names.append(name)
            seen.add(name.lower())
    if not names:
        raise InputError('The vocabulary is empty: type class names separated by commas, e.g. "dog, 猫, red car".')
    if len(names) > MAX_CLASSES:
        raise InputError(f"The vocabulary has {len(names)} names; the limit is {MAX_CLASSES}.")
    return names


def load_upload(path: str | Path | None) -> np.ndarray:
    """RGB uint8 array of an uploaded file, EXIF orientation applied; size checked before decoding."""
    if path is None:
        raise InputError("Upload an image first.")
    name = Path(path).name
    try:
        with Image.open(path) as image:
            w, h = image.size
            if w * h > MAX_PIXELS:
                raise InputError(f"{name} is {w}×{h} pixels ({w * h / 1e6:.1f} MP); the limit is "
                                 f"{MAX_PIXELS / 1e6:.1f} MP: downscale it first.")
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise InputError(f"{name} is not an image this demo can read ({type(err).__name__}).") from err
    except OSError as err:
        raise InputError(f"{name} could not be read as an image: {err}") from err


def parse_boxes(text: str | None, width: int, height: int) -> np.ndarray:
    """(N, 4) float boxes from lines of ``x1, y1, x2, y2`` (pixels; a JSON list of lists works too),
    clipped to the image; a malformed line or a box without area names its line."""
    rows = re.findall(r"[^\n\]]*\d[^\n\[\]]*", (text or "").replace("],", "]\n"))
    boxes = []
    for i, row in enumerate(r for r in rows if r.strip(" ,[]")):
        values = [v for v in re.split(r"[\s,\[\]]+", row.strip()) if v]
        try:
            box = [float(v) for v in values]
        except ValueError:
            box = []
        if len(box) != 4 or not all(np.isfinite(box)):
            raise InputError(f"Box {i + 1} ({row.strip()!r}): expected 4 numbers x1, y1, x2, y2 in pixels.")
        x1, y1, x2, y2 = min(max(box[0], 0), width), min(max(box[1], 0), height), \
            min(max(box[2], 0), width), min(max(box[3], 0), height)
        if x2 <= x1 or y2 <= y1:
            raise InputError(f"Box {i + 1} ({row.strip()!r}) has no area inside the {width}×{height} image "
                             "(x2 must exceed x1 and y2 exceed y1).")
        boxes.append([x1, y1, x2, y2])
    if not boxes:
        raise InputError("Give at least one box, one per line: x1, y1, x2, y2 (pixels).")
    if len(boxes) > MAX_BOXES:
        raise InputError(f"{len(boxes)} boxes; the limit is {MAX_BOXES}.")
    return np.asarray(boxes, dtype=np.float32)


# ------------------------------------------------------------------------------------- engine
class DemoEngine:
    """FG-CLIP 2 (+ optional detector / segmentor) answering the web demo's four questions."""

    def __init__(self, checkpoint: str | Path, detector: tuple[str, str] | None = None,
                 segmentor: tuple[str, str] | None = None, max_num_patches: int | None = 1024,
                 cache_dir: str | None = None, memory_cache: int = 32):
        self.checkpoint = Path(checkpoint)
        self.tower = load_fgclip2_tower(self.checkpoint, "vision", "--checkpoint").eval()
        self.processor = FGCLIP2ImageProcessor(max_num_patches)
        self.class_text = TextClassifier(self.checkpoint, cache_dir=cache_dir, progress=False)
        self.query_text = TextClassifier(self.checkpoint, templates_en=None, cache_dir=cache_dir, progress=False)
        self._embeddings: OrderedDict = OrderedDict()
        self._memory_cache = memory_cache
        self.detector = _load_mmdet_model(*detector) if detector else None
        self.segmentor = _load_mmdet_model(*segmentor) if segmentor else None
        self._model_vocab: dict[int, tuple] = {}
        self.font = packaged_cjk_font() or system_cjk_font()

    # ---------------------------------------------------------------------------- text side
    def embeddings(self, vocab: list[str], query: bool = False) -> torch.Tensor:
        """(C, D) class embeddings (templates for English names) or bare query embeddings, cached."""
        key = (query, tuple(vocab))
        if key not in self._embeddings:
            self._embeddings[key] = (self.query_text if query else self.class_text)(vocab)
            while len(self._embeddings) > self._memory_cache:
                self._embeddings.popitem(last=False)
        self._embeddings.move_to_end(key)
        return self._embeddings[key]

    def _use_vocabulary(self, model, vocab: list[str]) -> None:
        if self._model_vocab.get(id(model)) != tuple(vocab):
            kwargs = {"resize": True} if model is self.detector else {}
            model.set_vocabulary(vocab, {}, **kwargs)
            self._model_vocab[id(model)] = tuple(vocab)

    # -------------------------------------------------------------------------- image side
    @torch.inference_mode()
    def _dense(self, image: np.ndarray, boxes: np.ndarray | None = None):
        processed = self.processor([image], boxes=None if boxes is None else [boxes])
        feats = self.tower.vision_features(processed.images, with_global=False)
        return processed, feats.dense_maps[0]

    @torch.inference_mode()
    def classify_boxes(self, image: np.ndarray, boxes: np.ndarray, vocab: list[str]) -> torch.Tensor:
        """(N, C) softmax(100·cos) of RoIAlign-pooled boxes against the vocabulary, as the official box
        evaluation (fgclip2/eval/coco_box_ddp.py)."""
        text = self.embeddings(vocab)
        processed, dense = self._dense(image, boxes)
        regions = self.tower.pool_regions([dense], processed.boxes)[0]
        return (TEMPERATURE * regions @ text.t()).softmax(dim=-1)

    @torch.inference_mode()
    def heatmap(self, image: np.ndarray, query: str) -> tuple[Image.Image, float, float]:
        """Overlay of cos(dense feature, query) with a colour bar; (image, min, max)."""
        query = query.strip() if query else ""
        if not query:
            raise InputError("Type a text query for the heat map, e.g. \"a red car\" or \"红色的汽车\".")
        _, dense = self._dense(image)
        sim = torch.einsum("dhw,d->hw", F.normalize(dense, dim=0), self.embeddings([query], query=True)[0])
        lo, hi = float(sim.min()), float(sim.max())
        return draw_colour_bar(heatmap_overlay(image, sim), query, lo, hi, self.font), lo, hi

    @torch.inference_mode()
    def segment(self, image: np.ndarray, vocab: list[str]) -> np.ndarray:
        """(H, W) int map of vocabulary indices."""
        if self.segmentor is not None:
            self._use_vocabulary(self.segmentor, vocab)
            return _mmdet_predict(self.segmentor, image).pred_sem_seg.sem_seg[0].numpy()
        _, dense = self._dense(image)
        logits = torch.einsum("dhw,cd->chw", F.normalize(dense, dim=0), self.embeddings(vocab))
        logits = F.interpolate(logits[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0]
        return logits.argmax(dim=0).numpy()

    @torch.inference_mode()
    def detect(self, image: np.ndarray, vocab: list[str], score_thr: float = 0.3) -> list[Detection]:
        if self.detector is not None:
            self._use_vocabulary(self.detector, vocab)
            inst = _mmdet_predict(self.detector, image).pred_instances
            return [Detection(tuple(float(v) for v in b), vocab[int(c)], float(s))
                    for b, c, s in zip(inst.bboxes, inst.labels, inst.scores) if s >= score_thr]
        return self._detect_training_free(image, vocab, score_thr)

    def _detect_training_free(self, image: np.ndarray, vocab: list[str], score_thr: float) -> list[Detection]:
        import cv2
        from mmcv.ops import nms

        processed, dense = self._dense(image)
        text = self.embeddings(vocab)
        winner = torch.einsum("dhw,cd->chw", F.normalize(dense, dim=0), text).argmax(dim=0).numpy()
        cells = []  # component boxes in patch units
        for c in np.unique(winner):
            count, _, stats, _ = cv2.connectedComponentsWithStats((winner == c).astype(np.uint8), connectivity=4)
            cells += [[x, y, x + w, y + h] for x, y, w, h, _area in stats[1:count]]
        if not cells:
            return []
        cells = torch.tensor(cells, dtype=torch.float32)
        (ph, pw), (sh, sw), (ih, iw) = winner.shape, processed.sizes[0], image.shape[:2]
        # classified where FG-CLIP 2 sees them (processed pixels), reported in the user's pixels
        regions = self.tower.pool_regions([dense], [cells * torch.tensor([sw / pw, sh / ph] * 2)])[0]
        probs = (TEMPERATURE * regions @ text.t()).softmax(dim=-1)
        boxes = (cells * torch.tensor([iw / pw, ih / ph] * 2)).numpy()
        scores, labels = probs.max(dim=-1)
        keep = scores >= score_thr
        if not keep.any():
            return []
        kept_boxes, kept_scores = torch.from_numpy(boxes)[keep], scores[keep].float()
        _, order = nms(kept_boxes, kept_scores, iou_threshold=0.5)
        order = order[:MAX_BOXES]
        labels = labels[keep][order]
        return [Detection(tuple(float(v) for v in kept_boxes[i]), vocab[int(c)], float(kept_scores[i]))
                for i, c in zip(order.tolist(), labels.tolist())]


# ------------------------------------------------------------------------------------- mmdet
def _load_mmdet_model(config: str, weights: str):
    """An MMDetection model (detector or segmentor) on CPU, its test pipeline without annotation loading."""
    from mmdet.apis import init_detector

    for what, path in (("config", config), ("weights", weights)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{what} file not found: {path}")
    model = init_detector(config, weights, device="cpu")
    pipeline = model.cfg.test_dataloader.dataset.pipeline
    model.cfg.test_dataloader.dataset.pipeline = [t for t in pipeline if t["type"] != "LoadAnnotations"]
    return model


def _mmdet_predict(model, image: np.ndarray):
    from mmdet.apis import inference_detector

    return inference_detector(model, np.ascontiguousarray(image[..., ::-1]))  # mmdet pipelines take BGR
