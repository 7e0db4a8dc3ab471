#!/usr/bin/env python
"""Exports a pretraining runner checkpoint to the official FG-CLIP 2 layout, which
``FGCLIP2.from_pretrained`` and the detection / segmentation configs load:

    python tools/export_checkpoint.py work_dirs/RUN/iter_N.pth OUT_DIR [--tokenizer DIR] [--copy-region-heads]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fgclip2_det  # noqa: E402,F401  (torch.load allow-list for runner checkpoints)
from fgclip2_det.pretrain.export import export_runner_checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("out_dir")
    parser.add_argument("--tokenizer", help="folder with tokenizer files (default: the run's init checkpoint)")
    parser.add_argument("--copy-region-heads", action="store_true",
                        help="stage-1 models: MAP head -> dense head, text head -> box head (untrained in stage 1)")
    args = parser.parse_args(argv)
    out = export_runner_checkpoint(args.checkpoint, args.out_dir, args.tokenizer, args.copy_region_heads)
    print(f"exported {args.checkpoint} -> {out}")


if __name__ == "__main__":
    main()
