#!/usr/bin/env python
"""Exports FG-CLIP 2 (and optionally a trained open-vocabulary detector) to ONNX, one file per graph.

    python tools/export_onnx.py CHECKPOINT_DIR OUT_DIR [--graphs vision dense_head text_short ...]
    python tools/export_onnx.py CHECKPOINT_DIR OUT_DIR --detector-config CONFIG [--detector-weights PTH]
                                --classes "cat,dog,zebra" [--novel-classes zebra] [--image-size 640 640]

Graphs, inputs and outputs, the opset and what runs where: docs/export.md. Needs ``pip install -e
".[export]"`` (onnx, onnxruntime, onnxscript).
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.deploy.onnx_export import GRAPHS, OPSET, export_fgclip2_onnx  # noqa: E402


def quiet_exporter() -> None:
    """The exporter warns about every skipped torchvision op and deprecated tree specs; none of it
    concerns these graphs, and it buries the one progress line per graph."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*axis name.*")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="FG-CLIP 2 checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("out_dir", help="folder for the .onnx files")
    parser.add_argument("--graphs", nargs="+", default=list(GRAPHS), choices=list(GRAPHS),
                        help="FG-CLIP 2 graphs to export (default: all)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument("--detector-config", help="also export this FGCLIP2FViT detector (docs/export.md)")
    parser.add_argument("--detector-weights", help="trained detector checkpoint (.pth) for --detector-config")
    parser.add_argument("--classes", help="detector vocabulary baked into the graph, comma-separated")
    parser.add_argument("--novel-classes", default="",
                        help="comma-separated subset of --classes that gets the ensemble's novel weight")
    parser.add_argument("--image-size", type=int, nargs=2, default=(640, 640), metavar=("H", "W"),
                        help="detector input size (fixed in the detector graphs)")
    args = parser.parse_args(argv)
    quiet_exporter()
    written = export_fgclip2_onnx(args.checkpoint, args.out_dir, graphs=args.graphs, opset=args.opset)
    if args.detector_config:
        if not args.classes:
            parser.error("--detector-config needs --classes (the vocabulary baked into the graph)")
        from fgclip2_det.deploy.detector import export_detector_onnx

        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        written.update(export_detector_onnx(args.detector_config, args.out_dir, classes,
                                            weights=args.detector_weights, image_size=tuple(args.image_size),
                                            text_checkpoint=args.checkpoint, opset=args.opset,
                                            novel_classes=[c.strip() for c in args.novel_classes.split(",")
                                                           if c.strip()]))
    print(f"[export_onnx] wrote {len(written)} graph(s) to {args.out_dir}: "
          + ", ".join(p.name for p in written.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
