#!/usr/bin/env python
"""Writes the OV-LVIS training file: LVIS v1 train without the rare (novel) classes.

    python tools/prepare_ov_lvis.py --train data/lvis/lvis_v1_train.json --out-dir data/lvis/ov \\
        [--val data/lvis/lvis_v1_val.json]

Writes OUT_DIR/lvis_v1_train_norare.json (the name Detic's tools/remove_lvis_rare.py uses): all 1203
categories kept, so the ids and the class order stay those of lvis_v1_val.json; annotations of the
rare ('r', 337) categories removed; every image kept, with the rare ids also removed from its
`neg_category_ids` / `not_exhaustive_category_ids`. Base = common + frequent (866).
--val only checks the val file (same categories as train, valid frequencies) and reports its split.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.datasets.ov_splits import LVIS_NOVEL_FREQUENCIES, load_annotation_json, lvis_split  # noqa: E402

TRAIN_OUT = "lvis_v1_train_norare.json"
# Per-image category lists of LVIS's federated annotation. A rare id in neg_category_ids says "verified
# absent from this image", one in not_exhaustive_category_ids says "present here": both are supervision
# on novel classes that a loss or sampler reading these lists (e.g. a federated loss) would learn from.
# Detic's remove_lvis_rare.py leaves them in; they are removed here so the file carries no rare-class signal.
IMAGE_CATEGORY_LISTS = ("neg_category_ids", "not_exhaustive_category_ids")


def load_lvis(path):
    """The parsed LVIS file, with its category split checked; ValueError naming the file otherwise."""
    data = load_annotation_json(path, "LVIS")
    try:
        lvis_split(data["categories"])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return data


def category_table(data):
    return {c["id"]: (c["name"], c["frequency"]) for c in data["categories"]}


def rare_ids(categories):
    return {c["id"] for c in categories if c["frequency"] in LVIS_NOVEL_FREQUENCIES}


def remove_rare(data):
    """Copy of `data` without rare-class annotations, and without rare ids in the per-image lists."""
    rare = rare_ids(data["categories"])
    images = []
    for image in data["images"]:
        image = dict(image)
        for key in IMAGE_CATEGORY_LISTS:
            if key in image:
                image[key] = [i for i in image[key] if i not in rare]
        images.append(image)
    annotations = [a for a in data["annotations"] if a["category_id"] not in rare]
    return {**data, "images": images, "annotations": annotations}


def counts(data):
    """One line of category and annotation counts, split into base / novel."""
    rare = rare_ids(data["categories"])
    n_cats, n_anns = len(data["categories"]), len(data["annotations"])
    n_novel = sum(a["category_id"] in rare for a in data["annotations"])
    return (f"{n_cats} categories ({n_cats - len(rare)} base / {len(rare)} novel), {len(data['images'])} images, "
            f"{n_anns} annotations ({n_anns - n_novel} base / {n_novel} novel)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="lvis_v1_train.json")
    parser.add_argument("--val", help="lvis_v1_val.json, only checked")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    try:
        train = load_lvis(args.train)
        val = load_lvis(args.val) if args.val else None
        # APr is computed from the val file's frequencies: they must be the split trained on.
        if val is not None and category_table(val) != category_table(train):
            raise ValueError(f"{args.val}: categories (ids, names, frequencies) differ from those of {args.train}")
    except ValueError as err:
        sys.exit(f"error: {err}")
    out = remove_rare(train)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TRAIN_OUT
    path.write_text(json.dumps(out, separators=(",", ":")))
    n_cleaned = [sum(a.get(k) != b.get(k) for a, b in zip(train["images"], out["images"]))
                 for k in IMAGE_CATEGORY_LISTS]
    print(f"{path}: {counts(out)}; rare ids removed from the {' / '.join(IMAGE_CATEGORY_LISTS)} of "
          f"{' / '.join(map(str, n_cleaned))} images")
    if val is not None:
        print(f"{args.val}: {counts(val)}")
    n_kept, n_all = len(out["annotations"]), len(train["annotations"])
    print(f"OV-LVIS: train kept {n_kept}/{n_all} annotations, removed {n_all - n_kept} of the "
          f"{len(rare_ids(train['categories']))} rare categories")


if __name__ == "__main__":
    main()
