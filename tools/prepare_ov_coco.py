#!/usr/bin/env python
"""Writes the OV-COCO annotation files (OVR-CNN split: 48 base / 17 novel classes).

    python tools/prepare_ov_coco.py --train data/coco/annotations/instances_train2017.json \\
        --val data/coco/annotations/instances_val2017.json --out-dir data/coco/annotations/ov \\
        [--val-all-images]

Outputs, in OUT_DIR (categories = the 65 OV classes, original COCO ids and fields kept):
  instances_train2017_ov_base.json  annotations of the 48 base classes only (crowd boxes kept as they
                                    are); images = those keeping at least one of them, as MMDetection's
                                    filter_empty_gt would drop the others anyway.
  instances_val2017_ov_all.json     annotations of all 65 classes on the val images that have at least
                                    one of them (4,836 of val2017's 5,000, as OVR-CNN's
                                    instances_val2017_all_2.json), for the generalized evaluation (base
                                    and novel scored jointly); --val-all-images keeps every val image.
The 15 other COCO classes are dropped from both. See fgclip2_det/datasets/ov_splits.py.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.datasets.ov_splits import (OV_COCO_BASE_CLASSES, OV_COCO_CLASSES,  # noqa: E402
                                            OV_COCO_NOVEL_CLASSES, load_annotation_json, ov_coco_subset)

TRAIN_OUT = "instances_train2017_ov_base.json"
VAL_OUT = "instances_val2017_ov_all.json"


def load_coco(path):
    """The parsed COCO-format file; ValueError naming the file if it is missing or malformed."""
    data = load_annotation_json(path, "COCO")
    return data


def write(out, path):
    """Writes `out` as compact JSON and prints its counts."""
    path.write_text(json.dumps(out, separators=(",", ":")))
    base_ids = {c["id"] for c in out["categories"] if c["name"] in OV_COCO_BASE_CLASSES}
    n_anns, n_cats = len(out["annotations"]), len(out["categories"])
    n_base = sum(a["category_id"] in base_ids for a in out["annotations"])
    print(f"{path}: {len(out['images'])} images, {n_anns} annotations ({n_base} base / {n_anns - n_base} novel), "
          f"{n_cats} categories ({len(base_ids)} base / {n_cats - len(base_ids)} novel)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="instances_train2017.json")
    parser.add_argument("--val", required=True, help="instances_val2017.json")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--val-all-images", action="store_true",
                        help="keep every val image, also those without an annotation of the 65 classes "
                             "(default: only those with one, 4,836 of val2017's 5,000, as OVR-CNN)")
    args = parser.parse_args(argv)
    try:
        train, val = load_coco(args.train), load_coco(args.val)
        train_out = ov_coco_subset(train, OV_COCO_BASE_CLASSES, annotated_images_only=True, source=args.train)
        val_out = ov_coco_subset(val, OV_COCO_CLASSES, annotated_images_only=not args.val_all_images,
                                 source=args.val)
    except ValueError as err:
        sys.exit(f"error: {err}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write(train_out, out_dir / TRAIN_OUT)
    write(val_out, out_dir / VAL_OUT)
    print(f"OV-COCO ({len(OV_COCO_BASE_CLASSES)} base / {len(OV_COCO_NOVEL_CLASSES)} novel): train kept "
          f"{len(train_out['annotations'])}/{len(train['annotations'])} annotations on "
          f"{len(train_out['images'])}/{len(train['images'])} images; val kept "
          f"{len(val_out['annotations'])}/{len(val['annotations'])} annotations on {len(val_out['images'])} images")


if __name__ == "__main__":
    main()
