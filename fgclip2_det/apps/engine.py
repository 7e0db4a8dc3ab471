"""Inference behind the web demo (``tools/serve_demo.py``), kept free of any web library.

A thin layer over :mod:`fgclip2_det.apis`: FG-CLIP 2 alone, training-free (:class:`ZeroShotPredictor`:
box classification, heat maps, segmentation, detection), or an MMDetection model when one is given
(``FGCLIP2FViT`` / ``FGCLIP2Segmentor`` config + weights, :func:`init_model` + :func:`inference_model`
on the typed vocabulary). What is web-specific stays here: uploads (size checked before decoding,
messages naming the file, not the server's temporary path) and the heat map's drawing.

Bad input raises :class:`~fgclip2_det.apis.InputError` with a message meant for the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..apis import InputError, ZeroShotPredictor, inference_model, init_model
from ..openvocab import class_names
from .drawing import draw_colour_bar, heatmap_overlay, packaged_cjk_font, system_cjk_font

MAX_PIXELS = 4096 * 4096


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    label: str
    score: float


# ------------------------------------------------------------------------------------- inputs
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


# ------------------------------------------------------------------------------------- engine
class DemoEngine:
    """FG-CLIP 2 (+ optional detector / segmentor) answering the web demo's four questions.

    ``text_attention_mask`` ('auto', True, False) is :class:`ZeroShotPredictor`'s: by default class and
    query texts carry the attention mask exactly when the checkpoint's tokenizer returns one, as in
    the official box evaluations and this toolkit's box classifier.
    """

    def __init__(self, checkpoint: str | Path, detector: tuple[str, str] | None = None,
                 segmentor: tuple[str, str] | None = None, max_num_patches: int | None = 1024,
                 cache_dir: str | None = None, memory_cache: int = 32, text_attention_mask: bool | str = "auto"):
        self.zero_shot = ZeroShotPredictor(checkpoint, max_num_patches, cache_dir=cache_dir,
                                           memory_cache=memory_cache, text_attention_mask=text_attention_mask)
        self.checkpoint = self.zero_shot.checkpoint
        self.detector = init_model(*detector) if detector else None
        self.segmentor = init_model(*segmentor) if segmentor else None
        self.font = packaged_cjk_font() or system_cjk_font()

    def embeddings(self, vocab: list, query: bool = False):
        """(C, D) class embeddings (templates for English names) or bare query embeddings, cached."""
        return self.zero_shot.embeddings(vocab, query)

    def classify_boxes(self, image: np.ndarray, boxes: np.ndarray, vocab: list):
        """(N, C) softmax(100·cos) of RoIAlign-pooled boxes against the vocabulary, as the official box
        evaluation (fgclip2/eval/coco_box_ddp.py)."""
        return self.zero_shot.classify_boxes(image, boxes, vocab)

    def heatmap(self, image: np.ndarray, query: str) -> tuple[Image.Image, float, float]:
        """Overlay of cos(dense feature, query) with a colour bar; (image, min, max)."""
        sim = self.zero_shot.similarity_map(image, query)
        lo, hi = float(sim.min()), float(sim.max())
        return draw_colour_bar(heatmap_overlay(image, sim), query.strip(), lo, hi, self.font), lo, hi

    def segment(self, image: np.ndarray, vocab: list) -> np.ndarray:
        """(H, W) int map of vocabulary indices."""
        sample = (inference_model(self.segmentor, image, vocab) if self.segmentor is not None
                  else self.zero_shot.segment(image, vocab))
        return sample.pred_sem_seg.sem_seg[0].cpu().numpy()

    def detect(self, image: np.ndarray, vocab: list, score_thr: float = 0.3) -> list[Detection]:
        sample = (inference_model(self.detector, image, vocab) if self.detector is not None
                  else self.zero_shot.detect(image, vocab, score_thr))
        names, inst = class_names(vocab), sample.pred_instances
        return [Detection(tuple(float(v) for v in b), names[int(c)], float(s))
                for b, c, s in zip(inst.bboxes, inst.labels, inst.scores) if s >= score_thr]
