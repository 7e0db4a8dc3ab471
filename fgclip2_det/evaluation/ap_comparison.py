"""Is detector B's base / novel AP50 really above detector A's? A paired bootstrap over images
(``tools/compare_ap50.py`` is its command line).

AP50 is COCO's (101-point interpolated precision at IoU 0.5, all areas, up to 1000 detections per
image: what ``OVCocoMetric`` reports as base/novel AP50), averaged over the config's base and novel
classes. pycocotools matches each image once; every bootstrap draw then re-weights images by how
often they were drawn, for both dumps alike, so the interval is of the paired difference B - A.
:func:`compare` returns the table: A, B, B - A with its 95% percentile interval.

``shuffle_control`` adds, per dump, novel AP50 with the novel class names rotated among themselves
(every cyclic shift, averaged): what the same boxes and scores earn when the novel names carry no
information. A detector that recognises novel kinds beats it; one that only finds objects does not.
The real - rotated gap gets its bootstrap interval too (same draws).
"""
from __future__ import annotations

import contextlib
import io
import pickle

import numpy as np

RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def load_classes(config: str) -> tuple[list[str], list[str], list[str]]:
    """(classes, base, novel) from the test dataset's metainfo of ``config``."""
    from mmengine.config import Config

    meta = Config.fromfile(config).test_dataloader.dataset.get("metainfo") or {}
    missing = [k for k in ("classes", "base_classes", "novel_classes") if not meta.get(k)]
    if missing:
        raise ValueError(f"{config}: test_dataloader.dataset.metainfo has no {', '.join(missing)}")
    return list(meta["classes"]), list(meta["base_classes"]), list(meta["novel_classes"])


def to_coco_results(dump: list[dict], cat_ids: list[int], source: str) -> list[dict]:
    """``tools/test.py --out`` records -> COCO result dicts (label i is ``cat_ids[i]``, as in mmdet)."""
    if not isinstance(dump, list):
        raise ValueError(f"{source}: a {type(dump).__name__}, not the list of records of tools/test.py --out")
    out = []
    for i, rec in enumerate(dump):
        if not isinstance(rec, dict) or "pred_instances" not in rec or "img_id" not in rec:
            raise ValueError(f"{source}: record {i} has no pred_instances/img_id (not a tools/test.py --out dump)")
        pred = rec["pred_instances"]
        labels = pred["labels"]
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(cat_ids):
            raise ValueError(f"{source}: record {i} (image {rec['img_id']}) has labels outside the config's "
                             f"{len(cat_ids)} classes: {sorted(set(labels.tolist()))[:10]}")
        for (x1, y1, x2, y2), score, label in zip(pred["bboxes"].tolist(), pred["scores"].tolist(),
                                                 pred["labels"].tolist()):
            out.append(dict(image_id=rec["img_id"], category_id=cat_ids[label],
                            bbox=[x1, y1, x2 - x1, y2 - y1], score=score))
    return out


def match_per_image(coco_gt, results: list[dict], cat_ids: list[int], img_ids: list[int]) -> dict:
    """COCOeval's IoU-0.5 matching, kept per (class, image): detection scores, matched flags and
    ignore flags, and the number of counted ground truths."""
    from pycocotools.cocoeval import COCOeval

    if not results:  # pycocotools cannot load an empty result list: no detection, only ground truths
        return {cat: [(np.zeros(0), np.zeros(0, bool), np.zeros(0, bool),
                       sum(not a.get("iscrowd", 0) and not a.get("ignore", 0)
                           for a in coco_gt.imgToAnns[img] if a["category_id"] == cat)) for img in img_ids]
                for cat in cat_ids}
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        ev.params.catIds, ev.params.imgIds = cat_ids, img_ids
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1000]
        ev.evaluate()
    per = {}
    n_area, n_img = len(ev.params.areaRng), len(img_ids)
    for k, cat in enumerate(cat_ids):
        rows = []
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area range 0: all
            if e is None:
                rows.append((np.zeros(0), np.zeros(0, bool), np.zeros(0, bool), 0))
                continue
            rows.append((np.asarray(e["dtScores"], float), e["dtMatches"][0] > 0, e["dtIgnore"][0].astype(bool),
                         int(np.count_nonzero(~np.asarray(e["gtIgnore"], bool)))))
        per[cat] = rows
    return per


def flatten(rows) -> tuple[np.ndarray, ...]:
    """Per class: all detections sorted by score (stable, as COCOeval), with their image index."""
    scores = np.concatenate([r[0] for r in rows])
    order = np.argsort(-scores, kind="mergesort")
    image = np.concatenate([np.full(len(r[0]), i) for i, r in enumerate(rows)])[order]
    tp = np.concatenate([r[1] for r in rows])[order]
    ignore = np.concatenate([r[2] for r in rows])[order]
    n_gt = np.array([r[3] for r in rows])
    keep = ~ignore
    return image[keep], tp[keep], n_gt


def ap50(image: np.ndarray, tp: np.ndarray, n_gt: np.ndarray, weights: np.ndarray) -> float:
    """COCO's interpolated AP with each image counted ``weights[image]`` times; NaN without GT."""
    total_gt = float(np.dot(weights, n_gt))
    if total_gt == 0:
        return float("nan")
    w = weights[image]
    tps, fps = np.cumsum(w * tp), np.cumsum(w * ~tp)
    if len(tps) == 0:
        return 0.0
    recall = tps / total_gt
    precision = tps / np.maximum(tps + fps, np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean())


def mean_ap50(flat: dict, cats: list[int], weights: np.ndarray) -> float:
    values = [ap50(*flat[c], weights) for c in cats]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def rotate_labels(dump: list[dict], group: list[int], shift: int) -> list[dict]:
    """A copy of ``dump`` whose labels in ``group`` (class indices) move ``shift`` places along it."""
    import torch

    moved = {label: group[(i + shift) % len(group)] for i, label in enumerate(group)}

    def move(labels):
        return torch.tensor([moved.get(x, x) for x in labels.tolist()], dtype=labels.dtype)

    return [{**r, "pred_instances": {**r["pred_instances"], "labels": move(r["pred_instances"]["labels"])}}
            for r in dump]


def rotated_flats(coco_gt, dump, cat_ids, classes, novel, img_ids, source) -> list[dict]:
    """Per non-trivial cyclic shift of the novel names, the novel classes' flattened matches."""
    group = [classes.index(n) for n in novel]
    novel_ids = [cat_ids[i] for i in group]
    out = []
    for shift in range(1, len(group)):
        results = to_coco_results(rotate_labels(dump, group, shift), cat_ids, source)
        out.append({c: flatten(rows) for c, rows in match_per_image(coco_gt, results, novel_ids, img_ids).items()})
    return out


def interval(values) -> tuple[float, float]:
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def compare(config: str, ann_file: str, dump_a: str, dump_b: str, samples: int = 1000, seed: int = 0,
            shuffle_control: bool = False) -> dict:
    from mmdet.datasets.api_wrappers import COCO

    classes, base, novel = load_classes(config)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(ann_file)
    cat_ids = coco_gt.get_cat_ids(cat_names=classes)
    if len(cat_ids) != len(classes):
        raise ValueError(f"{ann_file}: {len(cat_ids)} of the config's {len(classes)} classes are categories")
    name_to_id = {coco_gt.cats[c]["name"]: c for c in cat_ids}
    groups = {"base": [name_to_id[n] for n in base], "novel": [name_to_id[n] for n in novel]}
    img_ids = coco_gt.get_img_ids()
    flats, rotated = [], []
    for path in (dump_a, dump_b):
        with open(path, "rb") as f:
            try:
                dump = pickle.load(f)
            except (pickle.UnpicklingError, EOFError) as err:
                raise ValueError(f"{path}: not a readable pickle ({err})") from err
        results = to_coco_results(dump, cat_ids, path)
        unknown = {r["img_id"] for r in dump} - set(img_ids)
        if unknown:
            raise ValueError(f"{path}: images {sorted(unknown)[:5]} are not in {ann_file}")
        per = match_per_image(coco_gt, results, cat_ids, img_ids)
        flats.append({c: flatten(rows) for c, rows in per.items()})
        if shuffle_control:
            rotated.append(rotated_flats(coco_gt, dump, cat_ids, classes, novel, img_ids, path))

    def evaluate(w: np.ndarray) -> dict:
        """Every figure of the table for one weighting of the images."""
        out = {g: [mean_ap50(f, cats, w) for f in flats] for g, cats in groups.items()}
        if shuffle_control:
            out["rotated"] = [float(np.mean([mean_ap50(f, groups["novel"], w) for f in shifts])) for shifts in rotated]
        return out

    full = evaluate(np.ones(len(img_ids)))
    rng = np.random.default_rng(seed)
    draws = [evaluate(np.bincount(rng.integers(0, len(img_ids), len(img_ids)), minlength=len(img_ids)).astype(float))
             for _ in range(samples)]
    table = {}
    for group in groups:
        diffs = np.array([d[group][1] - d[group][0] for d in draws])
        a, b = full[group]
        table[group] = dict(a=a, b=b, diff=b - a, **dict(zip(("low", "high"), interval(diffs))),
                            share_positive=float(np.mean(diffs > 0)))
    if shuffle_control:
        table["novel, names rotated"] = dict(a=full["rotated"][0], b=full["rotated"][1])
        gaps = {}
        for k, name in enumerate("ab"):
            low, high = interval([d["novel"][k] - d["rotated"][k] for d in draws])
            gaps.update({name: full["novel"][k] - full["rotated"][k], f"{name}_low": low, f"{name}_high": high})
        table["novel, real - rotated names"] = gaps
    return table


def markdown_table(table: dict) -> str:
    """The table of :func:`compare` as Markdown (with the rotation control when it was run)."""
    lines = ["| AP50 | A | B | B - A | 95% interval | draws with B > A |", "|---|---|---|---|---|---|"]
    for group in ("base", "novel"):
        r = table[group]
        lines.append(f"| {group} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} | {r['low']:+.4f} to "
                     f"{r['high']:+.4f} | {r['share_positive']:.1%} |")
    if "novel, names rotated" in table:
        rot, gap = table["novel, names rotated"], table["novel, real - rotated names"]
        lines += ["", "| novel AP50 | A | B |", "|---|---|---|",
                  f"| real names | {table['novel']['a']:.4f} | {table['novel']['b']:.4f} |",
                  f"| names rotated (mean of the shifts) | {rot['a']:.4f} | {rot['b']:.4f} |",
                  "| real - rotated, 95% interval | " + " | ".join(
                      f"{gap[k]:+.4f} ({gap[k + '_low']:+.4f} to {gap[k + '_high']:+.4f})" for k in "ab") + " |"]
    return "\n".join(lines)
