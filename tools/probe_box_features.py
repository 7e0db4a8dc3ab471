#!/usr/bin/env python
"""Linear probe on FG-CLIP 2 box features of a synthetic world: how much kind / colour / pattern /
size information the region embeddings carry, whatever the text tower makes of it.

    python tools/probe_box_features.py CHECKPOINT WORLD [--attributes kind colour] [--max-images 800]
                                       [--max-num-patches 256] [--out probe.json]

Every ground-truth box is RoIAlign-pooled from the dense map (``FGCLIP2.encode_regions``, as
BoxClass does); a multinomial logistic regression (L-BFGS, L2 1e-3) is fitted on the train split's
boxes and scored on the val split's, for each attribute. Accuracy far above chance (1 / number of
values) means the image side carries that attribute; BoxClass can still fail if the text side does
not (docs/demo_world.md uses both to say where a tiny model breaks).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgclip2_det.datasets.synthetic import SyntheticWorld  # noqa: E402
from fgclip2_det.model import FGCLIP2  # noqa: E402
from fgclip2_det.model.image_processor import FGCLIP2ImageProcessor  # noqa: E402

ATTRIBUTES = ("kind", "colour", "pattern", "size")


def world_boxes(world: SyntheticWorld, split: str, max_images: int) -> list[dict]:
    """Per image: path, xyxy boxes and the attribute values of each box (det/instances_*_all.json)."""
    ann = json.loads(world.path("det_train_all" if split == "train" else "det_val").read_text(encoding="utf-8"))
    kinds = {c["id"]: c["name"] for c in ann["categories"]}
    per_image = {im["id"]: {"path": world.path("images") / im["file_name"], "boxes": [], "labels": []}
                 for im in ann["images"][:max_images]}
    for a in ann["annotations"]:
        if a["image_id"] in per_image:
            x, y, w, h = a["bbox"]
            per_image[a["image_id"]]["boxes"].append([x, y, x + w, y + h])
            per_image[a["image_id"]]["labels"].append({"kind": kinds[a["category_id"]], **a["attributes"]})
    return [v for v in per_image.values() if v["boxes"]]


@torch.no_grad()
def box_features(model: FGCLIP2, processor: FGCLIP2ImageProcessor, items: list[dict], desc: str,
                 batch: int = 16) -> torch.Tensor:
    feats = []
    for start in tqdm(range(0, len(items), batch), desc=desc, unit="batch"):
        chunk = items[start:start + batch]
        processed = processor([str(i["path"]) for i in chunk], [torch.tensor(i["boxes"]) for i in chunk])
        feats += model.encode_regions(processed.images, processed.boxes)
    return torch.cat(feats)


def fit_probe(x_train: torch.Tensor, y_train: torch.Tensor, num_classes: int, l2: float = 1e-3,
              steps: int = 200) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features, fitted to convergence by L-BFGS."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x_train.shape[1], num_classes)
    opt = torch.optim.LBFGS(probe.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(probe(x_train), y_train) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def probe_accuracy(train_x, train_labels: list, val_x, val_labels: list) -> dict:
    values = sorted(set(train_labels) | set(val_labels))
    index = {v: i for i, v in enumerate(values)}
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    probe = fit_probe((train_x - mean) / std, torch.tensor([index[v] for v in train_labels]), len(values))
    pred = probe((val_x - mean) / std).argmax(1)
    truth = torch.tensor([index[v] for v in val_labels])
    return {"accuracy": float((pred == truth).float().mean()), "chance": 1.0 / len(values),
            "values": len(values), "train_boxes": len(train_labels), "val_boxes": len(val_labels)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="FG-CLIP 2 checkpoint folder (official layout)")
    parser.add_argument("world", help="synthetic world folder (tools/make_synthetic_world.py)")
    parser.add_argument("--attributes", nargs="+", default=list(ATTRIBUTES), choices=ATTRIBUTES)
    parser.add_argument("--max-images", type=int, default=800, help="per split (default 800)")
    parser.add_argument("--max-num-patches", type=int, default=256, help="NaFlex token budget (default 256)")
    parser.add_argument("--out", help="write the accuracies as JSON here")
    args = parser.parse_args(argv)
    world = SyntheticWorld(args.world)
    model = FGCLIP2.from_pretrained(args.checkpoint).eval()
    processor = FGCLIP2ImageProcessor(args.max_num_patches, patch_size=model.patch_size)
    splits = {s: world_boxes(world, s, args.max_images) for s in ("train", "val")}
    feats = {s: box_features(model, processor, items, f"{s} boxes") for s, items in splits.items()}
    labels = {s: [lab for item in items for lab in item["labels"]] for s, items in splits.items()}
    result = {a: probe_accuracy(feats["train"], [lab[a] for lab in labels["train"]],
                                feats["val"], [lab[a] for lab in labels["val"]]) for a in args.attributes}
    for a, r in result.items():
        print(f"probe {a}: {r['accuracy']:.3f} on {r['val_boxes']} val boxes (chance {r['chance']:.3f})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
