#!/usr/bin/env python
"""Is segmentation B's mIoU (seen / unseen / hIoU) really above A's? A paired bootstrap over images.

    python tools/test.py CONFIG --cfg-options test_evaluator.type=OVSemSegPerImageMetric \\
        test_evaluator.per_image_file=a.npz [...]                          # per-image areas of A
    python tools/test.py CONFIG --cfg-options test_evaluator.type=OVSemSegPerImageMetric \\
        test_evaluator.per_image_file=b.npz [...]                          # and of B, same images
    python tools/compare_miou.py a.npz b.npz [--names A B] [--samples 2000] [--seed 0]

Prints a Markdown table: A, B, B - A with its 95% percentile interval and the share of draws where
B - A <= 0. The maths: ``fgclip2_det/evaluation/seg_bootstrap.py``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.evaluation.seg_bootstrap import format_table, load_areas, paired_bootstrap  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("areas_a", help="per-image areas of the reference (A)")
    parser.add_argument("areas_b", help="per-image areas of the candidate (B)")
    parser.add_argument("--names", nargs=2, default=("A", "B"), metavar=("A", "B"))
    parser.add_argument("--samples", type=int, default=2000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = paired_bootstrap(load_areas(args.areas_a), load_areas(args.areas_b), args.samples, args.seed)
    print(format_table(result, *args.names))
    return result


if __name__ == "__main__":
    main()
