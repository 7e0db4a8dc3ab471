#!/usr/bin/env python
"""Is detector B's base / novel AP50 really above detector A's? A paired bootstrap over images.

    python tools/test.py CONFIG CKPT --out a.pkl [--cfg-options ...]      # two prediction dumps of
    python tools/test.py CONFIG CKPT --out b.pkl --cfg-options ...        # the same images
    python tools/compare_ap50.py CONFIG ANN_FILE a.pkl b.pkl [--samples 1000] [--seed 0] [--shuffle-control]
                                 [--json-out table.json]

Prints a Markdown table: A, B, B - A with its 95% percentile interval; ``--shuffle-control`` adds
novel AP50 with the novel class names rotated among themselves. The maths, and what the numbers
mean: ``fgclip2_det/evaluation/ap_comparison.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.evaluation.ap_comparison import compare, markdown_table  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="gives classes / base_classes / novel_classes")
    parser.add_argument("ann_file", help="COCO-format ground truth of the dumped images")
    parser.add_argument("dump_a", help="tools/test.py --out of the reference (A)")
    parser.add_argument("dump_b", help="tools/test.py --out of the candidate (B)")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shuffle-control", action="store_true",
                        help="also novel AP50 with the novel names rotated among themselves")
    parser.add_argument("--json-out", help="also write the table (a, b, diff, low, high per group) as JSON")
    args = parser.parse_args(argv)
    table = compare(args.config, args.ann_file, args.dump_a, args.dump_b, args.samples, args.seed,
                    args.shuffle_control)
    print(markdown_table(table))
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return table


if __name__ == "__main__":
    main()
