#!/usr/bin/env python
"""Converts FineHARD-layout pretraining annotations + images to indexed WebDataset-style tar shards
(read by ``FineHARDShardDataset``; layout in fgclip2_det/pretrain/shards.py):

    python tools/make_pretrain_shards.py OUT --ann-file A --image-root R [--zh-ann-file Z --zh-image-root ZR]
                                         [--data-root D] [--samples-per-shard N] [--no-regions] [--overwrite]

A malformed annotation stops the conversion (naming file and line/item); a missing or unreadable
image is skipped, counted and listed (OUT/skipped.tsv). Prints the summary as JSON.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.pretrain.shards import write_shards  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output folder (shards/, index.npy, language_ids.npy, index.json)")
    parser.add_argument("--ann-file", required=True,
                        help="English annotations: .json/.jsonl file, .txt list or folder")
    parser.add_argument("--image-root", default="", help="folder the English items' f_path are relative to")
    parser.add_argument("--zh-ann-file", help="Chinese annotations (optional)")
    parser.add_argument("--zh-image-root", help="folder the Chinese items' f_path are relative to (default: --image-root)")
    parser.add_argument("--data-root", default="", help="prefix of the four paths above")
    parser.add_argument("--samples-per-shard", type=int, default=10000)
    parser.add_argument("--no-regions", dest="with_regions", action="store_false",
                        help="validate captions only (stage-1 data); items are stored unchanged either way")
    parser.add_argument("--overwrite", action="store_true", help="replace shards already in OUT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    summary = write_shards(args.ann_file, args.image_root, args.out, zh_ann_file=args.zh_ann_file,
                           zh_image_root=args.zh_image_root, data_root=args.data_root,
                           samples_per_shard=args.samples_per_shard, with_regions=args.with_regions,
                           overwrite=args.overwrite)
    if len(summary["skipped_images"]) < summary["skipped"]:
        summary["skipped_images"].append(f"... {summary['skipped'] - len(summary['skipped_images'])} more in "
                                         f"{Path(args.out) / 'skipped.tsv'}")
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
