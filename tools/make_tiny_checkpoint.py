#!/usr/bin/env python
"""Writes a random-weight FG-CLIP 2 checkpoint in the official layout, for tests and demos.

    python tools/make_tiny_checkpoint.py OUT_DIR [--seed 0] [--preset tiny] [--no-tokenizer] [--init test|scratch]

OUT_DIR gets config.json, model.safetensors and the files of a small bilingual (EN/ZH) tokenizer
trained on the spot; `FGCLIP2.from_pretrained(OUT_DIR)` and `FGCLIP2Tokenizer.from_pretrained(OUT_DIR)`
load them. Nothing is downloaded.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.model.config import list_presets  # noqa: E402
from fgclip2_det.model.tiny import INITS, make_tiny_checkpoint  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="tiny", choices=list_presets())
    parser.add_argument("--no-tokenizer", action="store_true", help="weights and config only")
    parser.add_argument("--init", default="test", choices=INITS,
                        help="test: every weight O(1), for tests (default); scratch: the modules' own "
                             "initialisation, for training from random weights (the demo)")
    args = parser.parse_args(argv)
    out = make_tiny_checkpoint(args.out_dir, seed=args.seed, preset=args.preset,
                               with_tokenizer=not args.no_tokenizer, init=args.init)
    print(f"wrote {args.preset} FG-CLIP 2 checkpoint (seed {args.seed}, {args.init} init) to {out}: "
          f"{sorted(p.name for p in out.iterdir())}")


if __name__ == "__main__":
    main()
