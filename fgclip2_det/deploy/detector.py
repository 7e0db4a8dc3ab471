"""ONNX export of a trained open-vocabulary detector (``FGCLIP2FViT``) with its vocabulary baked in.

The whole ``predict`` path does not export (the attempt and its error are written to
``detector_blocker.txt``; docs/export.md "Detector"): MMDetection's RPN and RoI heads call mmcv's
``nms`` / ``RoIAlign`` through pybind (``mmcv._ext``), which ``torch.export`` cannot trace, and pass
``InstanceData`` between steps. What does export, at a fixed input size:

* ``detector_features.onnx``: image (1, 3, H, W) normalised -> the neck's pyramid maps (what RPN and
  RoI heads read) + the FG-CLIP 2 dense map (D, H/16, W/16);
* ``detector_scoring.onnx``: RoI features (N, C, 7, 7) pooled from the pyramid, the dense map and the
  N proposal boxes -> ``scores`` (N, K + 1) class probabilities (last = background) after the
  FG-CLIP 2 region-score ensemble, and ``bbox_deltas`` (N, 4) class-agnostic. The K class text
  embeddings and the "background" embedding are constants of the graph.

Between them the host runs RPN proposals, multi-level RoIAlign and the final decode + NMS
(``FGCLIP2FViT`` in PyTorch, or any runtime's NMS / RoiAlign).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .graphs import RegionGraph
from .onnx_export import OPSET, _export


def build_detector(config: str | Path, classes: Sequence[str], weights: str | Path | None = None,
                   text_checkpoint: str | Path | None = None, novel_classes: Sequence[str] = ()):
    """An ``FGCLIP2FViT`` from its config, trained weights loaded, vocabulary set (``novel_classes``
    get the ensemble's novel weight), in eval mode."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmdet.registry import MODELS

    from .. import register_all_modules

    config = Path(config)
    if not config.is_file():
        raise FileNotFoundError(f"detector config not found: {config}")
    if not classes:
        raise ValueError("the detector graph needs a vocabulary (classes) to bake in")
    register_all_modules()
    cfg = Config.fromfile(str(config))
    if text_checkpoint is not None and not Path(cfg.model.backbone.checkpoint).is_dir():
        cfg.model.backbone.checkpoint = str(text_checkpoint)
    with DefaultScope.overwrite_default_scope("mmdet"):
        model = MODELS.build(cfg.model)
    if weights is not None:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"detector weights not found: {weights}")
        load_checkpoint(model, str(weights), map_location="cpu")
    model.eval()  # a vocabulary of another size than the trained one is taken outside training only
    model.set_vocabulary(list(classes), list(novel_classes))
    return model


class DetectorFeatures(nn.Module):
    """image (1, 3, H, W) -> pyramid maps ..., dense map (1, D, H/16, W/16)."""

    def __init__(self, detector):
        super().__init__()
        self.backbone, self.neck = detector.backbone, detector.neck

    def forward(self, image: torch.Tensor):
        vlm = self.backbone(image)
        return (*self.neck(vlm), vlm.dense)


class DetectorScoring(nn.Module):
    """RoI features + dense map + proposals -> ensembled class probabilities, box deltas; the
    vocabulary is the box head's buffers at export time (constants of the graph)."""

    def __init__(self, detector):
        super().__init__()
        self.bbox_head = detector.roi_head.bbox_head
        self.ensemble = detector.roi_head.ensemble
        self.region = RegionGraph(detector.backbone.patch_size)

    def forward(self, roi_feats: torch.Tensor, dense_map: torch.Tensor, boxes: torch.Tensor):
        head = self.bbox_head
        logits, deltas = head(roi_feats)
        if self.ensemble is None:
            return logits.softmax(-1), deltas
        regions = self.region(dense_map, boxes)
        scores = self.ensemble(logits, regions, head.class_embeds, head.novel_mask, head.text_background)
        return (scores if self.ensemble.final_scores else scores.softmax(-1)), deltas


def _first_error(exc: Exception) -> str:
    """The exception's type and first line, plus the call that raised it when torch.export names it."""
    lines = str(exc).splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    if "The following call raised this error:" in lines:
        i = lines.index("The following call raised this error:")
        text += "\n  raised by:" + "".join("\n  " + line.strip() for line in lines[i + 1:i + 3] if line.strip())
    return text


def full_predict_blocker(detector, image_size: tuple[int, int]) -> str | None:
    """Tries ``torch.export`` (step 1 of the ONNX exporter) on ``predict`` whole, then on mmcv's
    ``nms`` and ``roi_align`` alone; returns what failed (None if ``predict`` traced)."""
    from mmcv.ops import nms, roi_align
    from mmdet.structures import DetDataSample

    h, w = image_size

    class Predict(nn.Module):
        def __init__(self):
            super().__init__()
            self.detector = detector

        def forward(self, image):
            sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                                 scale_factor=(1.0, 1.0), batch_input_shape=(h, w)))
            result = self.detector.predict(image, [sample])[0].pred_instances
            return result.bboxes, result.scores, result.labels

    class Nms(nn.Module):
        def forward(self, boxes, scores):
            return nms(boxes, scores, 0.5)[0]

    class RoIAlign(nn.Module):
        def forward(self, x, rois):
            return roi_align(x, rois, (7, 7), 1 / 16, 0, "avg", True)

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    probes = (("FGCLIP2FViT.predict", Predict(), (torch.zeros(1, 3, h, w),)),
              ("mmcv.ops.nms", Nms(), (boxes, torch.tensor([0.9, 0.8, 0.7]))),
              ("mmcv.ops.roi_align", RoIAlign(), (torch.randn(1, 4, 10, 10), torch.tensor([[0.0, 0, 0, 64, 64]]))))
    found = []
    for name, module, args in probes:
        try:
            with torch.no_grad():
                torch.export.export(module.eval(), args, strict=False)
        except Exception as e:  # the message is the finding: written to detector_blocker.txt
            found.append(f"{name}: {_first_error(e)}")
        else:
            if name == "FGCLIP2FViT.predict":
                return None
    return "\n".join(found)


def export_detector_onnx(config: str | Path, out_dir: str | Path, classes: Sequence[str],
                         weights: str | Path | None = None, image_size: tuple[int, int] = (640, 640),
                         text_checkpoint: str | Path | None = None, novel_classes: Sequence[str] = (),
                         opset: int = OPSET, log: Callable[[str], None] = print,
                         try_full: bool = True) -> dict[str, Path]:
    """Writes ``detector_features.onnx`` and ``detector_scoring.onnx`` (module doc) and, when
    ``try_full``, ``detector_blocker.txt`` with the error of exporting ``predict`` whole."""
    h, w = image_size
    if h % 32 or w % 32:
        raise ValueError(f"image_size must be multiples of 32 (the pyramid's coarsest stride); got {image_size}")
    detector = build_detector(config, classes, weights, text_checkpoint, novel_classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if try_full:
        log("[export_onnx] detector: trying the whole predict() path")
        blocker = full_predict_blocker(detector, image_size)
        (out / "detector_blocker.txt").write_text((blocker or "exported") + "\n", encoding="utf-8")
        if blocker:
            log(f"[export_onnx] detector: predict() does not export ({blocker.splitlines()[0][:200]}); "
                f"exporting features + scoring (details: {out / 'detector_blocker.txt'})")
    path = out / "detector_features.onnx"
    log(f"[export_onnx] detector features ({h}x{w}) -> {path}")
    features = DetectorFeatures(detector)
    with torch.no_grad():
        n_maps = len(features(torch.zeros(1, 3, h, w))) - 1
    _export(features, (torch.zeros(1, 3, h, w),), path, ["image"],
            [f"pyramid_{i}" for i in range(n_maps)] + ["dense_map"], None, opset)
    written["detector_features"] = path

    path = out / "detector_scoring.onnx"
    log(f"[export_onnx] detector scoring ({len(classes)} classes baked in) -> {path}")
    head = detector.roi_head.bbox_head
    size = detector.roi_head.bbox_roi_extractor.roi_layers[0].output_size
    roi_feats = torch.randn(3, head.in_channels, *size)
    dense = torch.randn(detector.backbone.embed_dim, h // 16, w // 16)
    boxes = torch.tensor([[0.0, 0.0, 64.0, 48.0], [16.0, 32.0, 200.0, 120.0], [5.0, 5.0, 40.0, 90.0]])
    n = torch.export.Dim("boxes", min=1)
    _export(DetectorScoring(detector), (roi_feats, dense, boxes), path, ["roi_feats", "dense_map", "boxes"],
            ["scores", "bbox_deltas"], ({0: n}, None, {0: n}), opset)
    written["detector_scoring"] = path
    return written


def reference_scoring(detector, roi_feats: torch.Tensor, dense_map: torch.Tensor, boxes: torch.Tensor):
    """The same quantities through the PyTorch detector's own path (mmcv RoIAlign for the regions):
    the oracle of the exported scoring graph."""
    head, ensemble = detector.roi_head.bbox_head, detector.roi_head.ensemble
    logits, deltas = head(roi_feats)
    if ensemble is None:
        return logits.softmax(-1), deltas
    regions = detector.backbone.fgclip2.pool_regions([dense_map], [boxes])[0]
    scores = ensemble(logits, regions, head.class_embeds, head.novel_mask, head.text_background)
    return (scores if ensemble.final_scores else F.softmax(scores, -1)), deltas
