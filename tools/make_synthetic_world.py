#!/usr/bin/env python
"""Generates the synthetic bilingual fine-grained world (images + every annotation format).

    python tools/make_synthetic_world.py OUT --images N [--seed S] [--workers W] [--profile fine|shapes]

Same seed -> byte-identical files, whatever the number of workers. See
fgclip2_det/datasets/synthetic/writer.py for the layout.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.datasets.synthetic import SyntheticWorld, generate_world  # noqa: E402
from fgclip2_det.datasets.synthetic.vocab import PROFILES  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores; 1 = in-process)")
    parser.add_argument("--profile", default="fine", choices=sorted(PROFILES),
                        help="fine: the evidence world (default); shapes: the demo's (docs/demo_world.md)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    world = SyntheticWorld(generate_world(args.out, args.images, args.seed, args.workers, args.profile))
    print(f"wrote {args.images} images ({world.meta['splits']}) to {args.out} in "
          f"{time.perf_counter() - start:.1f}s; classes: {len(world.classes)} "
          f"({len(world.novel_classes)} novel: {', '.join(world.novel_classes)})")


if __name__ == "__main__":
    main()
