"""Writes a synthetic world: images plus every annotation format the toolkit consumes.

Layout under the output folder (paths relative to it)::

    world.json                         metadata: seed, splits, classes (EN/ZH), base/novel, files
    images/000000.jpg ...
    pretrain/en.json, pretrain/zh.json FineHARD layout (TRN:L168-406), train split, ZH items carry is_cn
    det/instances_train_base.json      COCO, train split, novel kinds' annotations removed (OV-COCO style)
    det/instances_train_all.json       COCO, train split, every annotation (oracle / analysis)
    det/instances_val_all.json         COCO, val split, every class; also BoxClass by kind (EN + ZH names)
    boxclass/fine_val.json             COCO, val split, classes = colour x kind ("red circle" / "红色圆形")
    fgovd/{hard,medium,easy,trivial}[_zh].jsonl   FG-OVD items (1/2/3 attributes changed; other objects)
    seg/train/*.png, seg/val/*.png     label maps: 0 background, 1..K kinds, 255 ignore (unseen kinds in train)

Every image draws from its own random stream (seed, index), so the output does not depend on the
number of worker processes, and the same seed gives byte-identical files.
"""
from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

from .captions import LANGS, changed_specs, hard_negatives, image_captions, pick, region_expressions
from .scene import make_scene
from .vocab import (ATTRIBUTE_VALUES, ATTRIBUTES, COLOURS, KINDS, NOVEL_KINDS, PATTERNS, SIZES, ObjectSpec,
                    kind_name, world_profile)

VAL_EVERY = 5  # image i is in the val split iff i % 5 == 0
FGOVD_LEVELS = {"hard": 1, "medium": 2, "easy": 3}  # attributes changed
FGOVD_TEST_TYPES = {"hard": "1_attributes", "medium": "2_attributes", "easy": "3_attributes",
                    "trivial": "shuffle_negatives"}
NEGATIVES_PER_ITEM = 10
ALL_SPECS = [ObjectSpec(*f) for f in itertools.product(KINDS, SIZES, COLOURS, PATTERNS)]
IGNORE_INDEX = 255


def kind_ids(classes=tuple(KINDS)) -> dict[str, int]:
    """COCO category ids and label-map values of a world's classes (``WorldProfile.classes``): 1..K."""
    return {k: i + 1 for i, k in enumerate(classes)}


def name_negatives(kind: str, drawn: tuple[str, ...], rng: np.random.Generator) -> list[str]:
    """Negatives of a bare-name region expression: every other drawn kind, then kinds the world
    never draws, up to ``NEGATIVES_PER_ITEM``."""
    others = [k for k in drawn if k != kind]
    rest = [k for k in KINDS if k not in drawn]
    return (others + pick(rest, max(0, NEGATIVES_PER_ITEM - len(others)), rng))[:NEGATIVES_PER_ITEM]


def _kind_expression(kind: str, lang: str) -> str:
    """"a circle" / "an arrow" / "一个圆形"."""
    if lang == "zh":
        return "一个" + kind_name(kind, "zh")
    name = kind_name(kind, "en")
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def split_of(index: int) -> str:
    return "val" if index % VAL_EVERY == 0 else "train"


def _render_one(job: tuple[str, int, int, str]) -> dict:
    """Renders image ``index``, writes its JPEG and label map, returns its annotation record."""
    out_dir, seed, index, profile_name = job
    profile = world_profile(profile_name)
    rng = np.random.default_rng([seed, index])
    scene = make_scene(rng, profile)
    split, name = split_of(index), f"{index:06d}"
    Image.fromarray(scene.image).save(Path(out_dir, "images", name + ".jpg"), quality=92)
    label = np.zeros((scene.height, scene.width), np.uint8)
    ids = kind_ids(profile.classes)
    for obj in scene.objects:
        label[obj.visible] = IGNORE_INDEX if (split == "train" and obj.spec.kind in NOVEL_KINDS) \
            else ids[obj.spec.kind]
    Image.fromarray(label).save(Path(out_dir, "seg", split, name + ".png"), compress_level=1)

    rles = [mask_utils.encode(np.asfortranarray(o.visible.astype(np.uint8))) for o in scene.objects]
    boxes = [[float(v) for v in b] for b in mask_utils.toBbox(rles)]
    specs = [o.spec for o in scene.objects]
    objects = []
    for i, (spec, rle) in enumerate(zip(specs, rles)):
        others = specs[:i] + specs[i + 1:]
        negatives = hard_negatives(spec, others, rng, attributes=profile.negative_attributes)
        obj = {"spec": spec, "bbox": boxes[i], "area": int(mask_utils.area(rle)),
               "rle": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
               "negatives": negatives, "name_negatives": None, "fgovd": {}}
        for lang in LANGS:
            obj[lang] = region_expressions(specs, boxes, scene.width, scene.height, i, lang)
        if profile.region_names and rng.random() < profile.region_names:  # other profiles: stream as before
            obj["name_negatives"] = name_negatives(spec.kind, profile.kinds, rng)
        if split == "val":
            obj["fgovd"] = {level: pick(changed_specs(spec, k, others), NEGATIVES_PER_ITEM, rng)
                            for level, k in FGOVD_LEVELS.items()}
        objects.append(obj)
    captions = {lang: image_captions(specs, boxes, scene.width, scene.height, scene.background, lang)
                for lang in LANGS}
    return {"index": index, "name": name, "split": split, "width": scene.width, "height": scene.height,
            "background": scene.background, "captions": captions, "objects": objects}


def render_records(out_dir: Path, num_images: int, seed: int, workers: int, profile: str = "fine") -> list[dict]:
    jobs = [(str(out_dir), seed, i, profile) for i in range(num_images)]
    progress = dict(total=num_images, desc="rendering", unit="img", disable=None)
    if workers <= 1:
        return [_render_one(j) for j in tqdm(jobs, **progress)]
    # spawn: the parent has torch loaded, and forking a process with OpenMP threads can hang.
    with mp.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(_render_one, jobs, chunksize=32), **progress))


# ------------------------------------------------------------------------------------ formats
def pretrain_items(records: list[dict], lang: str) -> list[dict]:
    items = []
    for r in records:
        if r["split"] != "train":
            continue
        short, long = r["captions"][lang]
        regions = []
        for o in r["objects"]:
            x, y, w, h = o["bbox"]
            spec = o["spec"]
            box = [x / r["width"], y / r["height"], (x + w) / r["width"], (y + h) / r["height"]]
            if o["name_negatives"] is None:
                regions.append({
                    "bbox": box, "short_expr": o[lang][0], "long_expr": o[lang][1], "flag_short_neg": 1,
                    "short_expr_negs": {str(k): n.describe(lang) for k, n in enumerate(o["negatives"])},
                    "neg_changes": [spec.differences(n) for n in o["negatives"]]})
            else:  # the bare kind ("a circle"), its negatives the other kinds' names
                regions.append({
                    "bbox": box, "short_expr": _kind_expression(spec.kind, lang), "long_expr": o[lang][1],
                    "flag_short_neg": 1,
                    "short_expr_negs": {str(k): _kind_expression(n, lang) for k, n in enumerate(o["name_negatives"])},
                    "neg_changes": [["kind"]] * len(o["name_negatives"])})
        item = {"f_path": f"images/{r['name']}.jpg", "caption": long, "short_caption": short, "bbox_info": regions}
        if lang == "zh":
            item["is_cn"] = True
        items.append(item)
    return items


def _coco_categories(kinds, fine: bool = False) -> list[dict]:
    if not fine:
        return [{"id": i, "name": kind_name(k, "en"), "name_zh": kind_name(k, "zh"),
                 "supercategory": "shape", "split": "novel" if k in NOVEL_KINDS else "base"}
                for k, i in kind_ids(kinds).items()]
    cats = []
    for c, (c_en, c_zh, _) in COLOURS.items():
        for k in kind_ids(kinds):
            cats.append({"id": len(cats) + 1, "name": f"{c_en} {kind_name(k, 'en')}",
                         "name_zh": f"{c_zh}{kind_name(k, 'zh')}", "supercategory": kind_name(k, "en"),
                         "split": "novel" if k in NOVEL_KINDS else "base", "colour": c, "kind": k})
    return cats


def coco_json(records, split: str, kinds=tuple(KINDS), keep_kinds=None, fine: bool = False) -> dict:
    """COCO file of a split; categories = the world's ``kinds``, annotations of ``keep_kinds`` (all)."""
    categories = _coco_categories(kinds, fine)
    fine_ids = {(c["colour"], c["kind"]): c["id"] for c in categories} if fine else {}
    ids, keep_kinds = kind_ids(kinds), kinds if keep_kinds is None else keep_kinds
    images, annotations = [], []
    for r in records:
        if r["split"] != split:
            continue
        images.append({"id": r["index"], "file_name": f"{r['name']}.jpg", "width": r["width"],
                       "height": r["height"]})
        for o in r["objects"]:
            spec = o["spec"]
            if spec.kind not in keep_kinds:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": r["index"],
                "category_id": fine_ids[(spec.colour, spec.kind)] if fine else ids[spec.kind],
                "bbox": o["bbox"], "area": o["area"], "segmentation": o["rle"], "iscrowd": 0,
                "attributes": {a: getattr(spec, a) for a in ATTRIBUTES},
                "caption": spec.describe("en"), "caption_zh": spec.describe("zh")})
    return {"info": {"description": "fgclip2_det synthetic world"}, "images": images,
            "annotations": annotations, "categories": categories}


def fgovd_items(records: list[dict], level: str, lang: str, seed: int) -> list[dict]:
    """FG-OVD items of the val split: the object's description vs 10 negatives."""
    val = [r for r in records if r["split"] == "val"]
    pool = list(dict.fromkeys(o["spec"] for r in val for o in r["objects"]))
    items = []
    for r in val:
        specs = [o["spec"] for o in r["objects"]]
        for i, o in enumerate(r["objects"]):
            if level == "trivial":
                negs = pick(trivial_candidates(o["spec"], specs, pool), NEGATIVES_PER_ITEM,
                            np.random.default_rng([seed, 7, r["index"], i]))
            else:
                negs = o["fgovd"][level]
            items.append({"img_path": f"images/{r['name']}.jpg", "bbox": o["bbox"],
                          "pos_expression": [o["spec"].describe(lang)],
                          "neg_expression": [n.describe(lang) for n in negs],
                          "test_type": FGOVD_TEST_TYPES[level]})
    return items


def trivial_candidates(spec: ObjectSpec, image_specs: list[ObjectSpec], pool: list[ObjectSpec]) -> list:
    """Captions of other objects: val objects of another kind that are absent from this image; a
    small world tops them up from every possible object, so there are always enough."""
    ok = [c for c in pool if c.kind != spec.kind and c not in image_specs]
    if len(ok) < NEGATIVES_PER_ITEM:
        ok += [c for c in ALL_SPECS if c.kind != spec.kind and c not in image_specs and c not in ok]
    return ok


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, items: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")


def world_files() -> dict:
    files = {"images": "images", "pretrain_en": "pretrain/en.json", "pretrain_zh": "pretrain/zh.json",
             "det_train_base": "det/instances_train_base.json", "det_train_all": "det/instances_train_all.json",
             "det_val": "det/instances_val_all.json", "boxclass_fine_val": "boxclass/fine_val.json",
             "seg_train": "seg/train", "seg_val": "seg/val"}
    for level in FGOVD_TEST_TYPES:
        files[f"fgovd_{level}_en"] = f"fgovd/{level}.jsonl"
        files[f"fgovd_{level}_zh"] = f"fgovd/{level}_zh.jsonl"
    return files


def generate_world(out_dir: str | Path, num_images: int = 200, seed: int = 0,
                   workers: int | None = None, profile: str = "fine") -> Path:
    """Renders ``num_images`` scenes and writes every format (module docstring). Returns the folder.
    ``profile``: how scenes are drawn and described (``vocab.PROFILES``: ``fine``, ``shapes``)."""
    world = world_profile(profile)  # an unknown name fails before anything is written
    if num_images < VAL_EVERY:
        raise ValueError(f"need at least {VAL_EVERY} images for a train and a val split, got {num_images}")
    out = Path(out_dir)
    for sub in ("images", "seg/train", "seg/val"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    records = render_records(out, num_images, seed, workers if workers is not None else os.cpu_count() or 1,
                             profile)
    files = world_files()
    for lang in LANGS:
        _write_json(out / files[f"pretrain_{lang}"], pretrain_items(records, lang))
    kinds, base, novel = world.classes, world.base_kinds, world.novel_kinds
    _write_json(out / files["det_train_base"], coco_json(records, "train", kinds, keep_kinds=base))
    _write_json(out / files["det_train_all"], coco_json(records, "train", kinds))
    _write_json(out / files["det_val"], coco_json(records, "val", kinds))
    _write_json(out / files["boxclass_fine_val"], coco_json(records, "val", kinds, fine=True))
    for level in FGOVD_TEST_TYPES:
        for lang in LANGS:
            _write_jsonl(out / files[f"fgovd_{level}_{lang}"], fgovd_items(records, level, lang, seed))
    meta = {
        "version": 1, "seed": seed, "num_images": num_images, "profile": profile,
        "splits": {s: sum(r["split"] == s for r in records) for s in ("train", "val")},
        "classes": [kind_name(k, "en") for k in kinds], "classes_zh": [kind_name(k, "zh") for k in kinds],
        "base_classes": [kind_name(k, "en") for k in base],
        "novel_classes": [kind_name(k, "en") for k in novel],
        "attributes": {a: list(ATTRIBUTE_VALUES[a]) for a in ATTRIBUTES},
        "seg": {"classes": ["background"] + [kind_name(k, "en") for k in kinds],
                "classes_zh": ["背景"] + [kind_name(k, "zh") for k in kinds],
                "unseen_classes": [kind_name(k, "en") for k in novel], "ignore_index": IGNORE_INDEX},
        "files": files,
    }
    _write_json(out / "world.json", meta)
    return out
