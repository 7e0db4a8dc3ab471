"""The synthetic world: formats load, annotations agree with pixels, negatives are what they claim,
novel kinds are never boxed in detection training, output is deterministic."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from fgclip2_det.datasets.synthetic import KINDS, NOVEL_KINDS, ObjectSpec, SyntheticWorld, generate_world
from fgclip2_det.datasets.synthetic.vocab import COLOURS, PATTERNS, SIZES

N_IMAGES, SEED = 60, 3
# Every description the world can write, inverted: text -> spec (the oracle for "which attributes").
ALL_SPECS = [ObjectSpec(*f) for f in itertools.product(KINDS, SIZES, COLOURS, PATTERNS)]
TEXT_TO_SPEC = {lang: {s.describe(lang): s for s in ALL_SPECS} for lang in ("en", "zh")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return SyntheticWorld(generate_world(tmp_path_factory.mktemp("world"), N_IMAGES, SEED, workers=2))


def load_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def tree_digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def test_meta_and_scene_statistics(world):
    meta = world.meta
    assert meta["splits"] == {"train": 48, "val": 12}
    assert len(world.classes) >= 12 and len(meta["attributes"]["colour"]) >= 8
    assert set(world.novel_classes) == set(NOVEL_KINDS) and not set(world.novel_classes) & set(world.base_classes)
    coco = COCO(str(world.path("det_train_all")))
    per_image = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert min(per_image) >= 1 and max(per_image) <= 6
    for img in coco.dataset["images"]:
        assert 128 <= img["width"] <= 512 and 128 <= img["height"] <= 512
        with Image.open(world.root / "images" / img["file_name"]) as im:
            assert im.size == (img["width"], img["height"]) and im.mode == "RGB"
    attrs = [a["attributes"] for a in coco.dataset["annotations"]]
    assert {a["pattern"] for a in attrs} == set(PATTERNS) and len({a["colour"] for a in attrs}) >= 8


@pytest.mark.parametrize("key", ["det_train_base", "det_train_all", "det_val", "boxclass_fine_val"])
def test_coco_masks_and_boxes_agree(world, key):
    coco = COCO(str(world.path(key)))
    assert coco.dataset["annotations"], key
    for ann in coco.dataset["annotations"]:
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        derived = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert np.allclose(derived, ann["bbox"]), ann["id"]
        assert mask.sum() == ann["area"] > 0


def test_boxclass_names_are_bilingual(world):
    for key, n in (("det_val", 14), ("boxclass_fine_val", 14 * 12)):
        cats = load_json(world.path(key))["categories"]
        assert len(cats) == n
        assert all(c["name"].isascii() and re.search(r"[\u4e00-\u9fff]", c["name_zh"]) for c in cats)
    fine = COCO(str(world.path("boxclass_fine_val")))
    for ann in fine.dataset["annotations"]:
        cat = fine.cats[ann["category_id"]]
        assert (cat["colour"], cat["kind"]) == (ann["attributes"]["colour"], cat["kind"])


def test_mmdet_coco_dataset_loads(world):
    from mmdet.datasets import CocoDataset
    from mmdet.datasets.transforms import LoadAnnotations
    from mmcv.transforms import LoadImageFromFile

    ds = CocoDataset(ann_file=str(world.path("det_val")), data_root=str(world.root),
                     data_prefix=dict(img="images/"), metainfo=world.det_metainfo(), test_mode=True,
                     pipeline=[dict(type=LoadImageFromFile),
                               dict(type=LoadAnnotations, with_bbox=True, with_mask=True)])
    coco = COCO(str(world.path("det_val")))
    assert len(ds) == len(coco.getImgIds()) == 12
    for i in range(len(ds)):
        item = ds[i]
        n = len(coco.getAnnIds(imgIds=item["img_id"]))
        assert len(item["gt_bboxes"]) == n and item["gt_masks"].masks.shape[0] == n
        assert item["img"].shape[:2] == item["gt_masks"].masks.shape[1:]


@pytest.mark.parametrize("split, ann_key", [("val", "det_val"), ("train", "det_train_all")])
def test_label_maps_agree_with_masks(world, split, ann_key):
    coco = COCO(str(world.path(ann_key)))
    ignore = world.meta["seg"]["ignore_index"]
    novel_ids = {c["id"] for c in coco.dataset["categories"] if c["split"] == "novel"}
    for img in coco.dataset["images"]:
        label = np.asarray(Image.open(world.root / "seg" / split / img["file_name"].replace(".jpg", ".png")))
        expected = np.zeros_like(label)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            value = ignore if (split == "train" and ann["category_id"] in novel_ids) else ann["category_id"]
            expected[coco.annToMask(ann) > 0] = value
        assert np.array_equal(label, expected), img["file_name"]
    values = set(np.unique(np.concatenate([np.unique(np.asarray(Image.open(p)))
                                           for p in (world.root / "seg" / split).glob("*.png")])))
    assert values <= set(range(15)) | {ignore}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_hard_negatives_change_exactly_the_stated_attributes(world, lang):
    items = load_json(world.path(f"pretrain_{lang}"))
    assert len(items) == 48 and all(("is_cn" in i) == (lang == "zh") for i in items)
    table = TEXT_TO_SPEC[lang]
    n_changed = []
    for item in items:
        positives = [table[r["short_expr"]] for r in item["bbox_info"]]
        for region, pos in zip(item["bbox_info"], positives):
            negs = [table[t] for t in region["short_expr_negs"].values()]
            assert len(negs) == 10 == len(set(negs)) and region["flag_short_neg"] == 1
            for neg, stated in zip(negs, region["neg_changes"]):
                assert pos.differences(neg) == stated and 1 <= len(stated) <= 3 and "kind" not in stated
                assert neg not in positives, f"negative equals another positive in {item['f_path']}"
                n_changed.append(len(stated))
            x1, y1, x2, y2 = region["bbox"]
            assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
    assert set(n_changed) == {1, 2, 3}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_fgovd_levels(world, lang):
    table = TEXT_TO_SPEC[lang]
    suffix = "" if lang == "en" else "_zh"
    expected_changes = {"hard": 1, "medium": 2, "easy": 3}
    val_objects = len(load_json(world.path("det_val"))["annotations"])
    for level in ("hard", "medium", "easy", "trivial"):
        items = read_jsonl(world.root / "fgovd" / f"{level}{suffix}.jsonl")
        assert len(items) == val_objects
        by_image = {}
        for it in items:
            by_image.setdefault(it["img_path"], []).append(table[it["pos_expression"][0]])
        for it in items:
            pos = table[it["pos_expression"][0]]
            negs = [table[t] for t in it["neg_expression"]]
            assert len(negs) == 10 == len(set(negs)) and len(it["bbox"]) == 4
            assert not set(negs) & set(by_image[it["img_path"]])
            for neg in negs:
                if level == "trivial":
                    assert neg.kind != pos.kind
                else:
                    assert len(pos.differences(neg)) == expected_changes[level] and neg.kind == pos.kind


def test_novel_kinds_never_boxed_in_detection_training(world):
    novel = set(world.novel_classes)
    base_train = COCO(str(world.path("det_train_base")))
    names = {c["id"]: c["name"] for c in base_train.dataset["categories"]}
    assert not [a for a in base_train.dataset["annotations"] if names[a["category_id"]] in novel]
    assert len(base_train.dataset["images"]) == 48  # images kept, novel annotations dropped
    for key in ("det_train_all", "det_val"):
        anns = load_json(world.path(key))["annotations"]
        assert any(names[a["category_id"]] in novel for a in anns), key
    en = json.dumps(load_json(world.path("pretrain_en")))
    assert all(re.search(rf"\b{k}\b", en) for k in NOVEL_KINDS)
    fgovd = (world.root / "fgovd" / "hard.jsonl").read_text()
    assert any(re.search(rf"\b{k}\b", fgovd) for k in NOVEL_KINDS)


def test_same_seed_same_bytes_whatever_the_workers(world, tmp_path):
    again = generate_world(tmp_path / "again", N_IMAGES, SEED, workers=1)
    assert tree_digest(again) == tree_digest(world.root)
    other = generate_world(tmp_path / "other", N_IMAGES, SEED + 1, workers=1)
    assert (other / "images" / "000001.jpg").read_bytes() != (world.root / "images" / "000001.jpg").read_bytes()
    assert (other / "pretrain" / "en.json").read_bytes() != (world.root / "pretrain" / "en.json").read_bytes()


def test_chinese_round_trips_and_tokenizes(world, tiny_dir):
    from fgclip2_det.model import FGCLIP2Tokenizer

    items = load_json(world.path("pretrain_zh"))
    texts = [items[0]["caption"], items[0]["short_caption"]] + [r["long_expr"] for r in items[0]["bbox_info"]]
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in texts)
    assert json.loads(json.dumps(texts, ensure_ascii=False)) == texts
    tok = FGCLIP2Tokenizer.from_pretrained(tiny_dir)
    ids = tok(texts[1:], kind="box")
    unk = tok.hf_tokenizer.unk_token_id
    assert not (ids == unk).any()
    for row, text in zip(ids, texts[1:]):
        assert tok.decode(row) == text


def test_world_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_synthetic_world.py"):
        SyntheticWorld(tmp_path)
    with pytest.raises(ValueError, match="at least 5 images"):
        generate_world(tmp_path / "w", 3)


def test_world_reader_paths(world):
    assert world.path("det_val").is_file() and world.path("images").is_dir()
    with pytest.raises(KeyError, match="known"):
        world.path("nope")
    meta = world.det_metainfo()
    assert meta["classes"][:2] == ("circle", "square") and meta["classes_zh"][0] == "圆形"


def test_project_dataset_classes_load_the_world(world):
    """The toolkit's own readers take every format as written: pretraining, BoxClass, FG-OVD."""
    from fgclip2_det.det.boxclass_dataset import BoxClassDataset
    from fgclip2_det.det.fgovd_dataset import FGOVDDataset
    from fgclip2_det.pretrain import FineHARDDataset

    pretrain = FineHARDDataset("pretrain/en.json", data_root=str(world.root), zh_ann_file="pretrain/zh.json")
    assert len(pretrain) == 96 and pretrain.languages.count("zh") == 48
    assert pretrain[0]["regions"] and pretrain[0]["image"].ndim == 3

    boxclass = BoxClassDataset(ann_file=str(world.path("det_val")), data_prefix=dict(img=str(world.root / "images")),
                               test_mode=True, pipeline=[])
    assert boxclass.metainfo["classes"] == world.classes
    assert sum(len(boxclass.get_data_info(i)["instances"]) for i in range(len(boxclass))) == \
        len(load_json(world.path("det_val"))["annotations"])

    for level, test_type in (("hard", "1_attributes"), ("trivial", "shuffle_negatives")):
        ds = FGOVDDataset(ann_file=str(world.root / "fgovd" / f"{level}.jsonl"),
                          data_prefix=dict(img=str(world.root)), test_mode=True, pipeline=[], test_type=test_type)
        item = ds.get_data_info(0)
        assert len(item["box_captions"][0]) == 11 and Path(item["img_path"]).is_file()


@pytest.mark.parametrize("config, n_classes", [("boxclass_fgclip2-tiny_synthetic.py", 14),
                                               ("boxclass_fgclip2-tiny_synthetic-fine.py", 14 * 12)])
def test_tiny_boxclass_configs_label_every_val_box(world, config, n_classes):
    """The two synthetic BoxClass configs: kinds (14) and colour x kind (168), every val box labelled."""
    from mmdet.registry import DATASETS
    from mmengine.config import Config

    root = Path(__file__).resolve().parents[2]
    dataset = Config.fromfile(root / "configs" / "boxclass" / config).test_dataloader.dataset
    dataset.update(data_root=f"{world.root}/", pipeline=[])
    ds = DATASETS.build(dataset)
    classes = ds.metainfo["classes"]
    assert len(classes) == n_classes
    val = load_json(world.path("det_val"))
    kind_of = {c["id"]: c["name"] for c in val["categories"]}
    labelled = {i["ann_id"]: classes[i["bbox_label"]] for item in ds for i in item["instances"]}
    assert len(labelled) == len(val["annotations"])
    for ann in val["annotations"]:
        expected = kind_of[ann["category_id"]]
        if n_classes > 14:
            expected = f"{ann['attributes']['colour']} {expected}"
        assert labelled[ann["id"]] == expected, ann["id"]


# ------------------------------------------------------------------------ the demo's world profile
@pytest.fixture(scope="module")
def shapes_world(tmp_path_factory):
    return SyntheticWorld(generate_world(tmp_path_factory.mktemp("shapes"), 40, 4, workers=1, profile="shapes4"))


def _image_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def six_kinds_world(tmp_path_factory):
    return SyntheticWorld(generate_world(tmp_path_factory.mktemp("six"), 40, 4, workers=1, profile="six_kinds"))


@pytest.mark.parametrize("which", ["world", "shapes_world", "six_kinds_world"])
def test_no_evaluation_image_occurs_in_the_pretraining_files(which, request):
    """Every image an evaluation reads (BoxClass / detection val, FG-OVD, segmentation val) differs,
    byte for byte, from every image the pretraining files name."""
    w = request.getfixturevalue(which)
    pretrain = {_image_digest(w.root / item["f_path"]) for lang in ("en", "zh")
                for item in load_json(w.path(f"pretrain_{lang}"))}
    evaluated = [w.root / "images" / im["file_name"] for im in load_json(w.path("det_val"))["images"]]
    evaluated += [w.root / it["img_path"] for level in ("hard", "trivial")
                  for it in read_jsonl(w.root / "fgovd" / f"{level}.jsonl")]
    evaluated += [w.root / "images" / p.name.replace(".png", ".jpg") for p in (w.root / "seg" / "val").glob("*.png")]
    assert evaluated and pretrain
    assert not {_image_digest(p) for p in evaluated} & pretrain


def test_shapes_profile_draws_few_large_objects_and_negatives_that_may_change_the_kind(shapes_world):
    from fgclip2_det.datasets.synthetic.vocab import PROFILES

    profile = PROFILES["shapes4"]
    assert shapes_world.meta["profile"] == "shapes4"
    coco = COCO(str(shapes_world.path("det_train_all")))
    per_image = [len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()]
    assert 1 <= min(per_image) and max(per_image) <= profile.objects[1]
    sides = []
    for img in coco.dataset["images"]:
        assert profile.long_side[0] <= max(img["width"], img["height"]) <= profile.long_side[1]
        sides += [max(a["bbox"][2:]) / min(img["width"], img["height"])
                  for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"]))]
    assert np.median(sides) > 0.3  # larger than the fine world's objects (0.16-0.52 of the short side)
    attrs = [a["attributes"] for a in coco.dataset["annotations"]]
    assert {a["colour"] for a in attrs} <= set(profile.colours)
    assert {a["pattern"] for a in attrs} <= set(profile.patterns)
    changes = []
    for item in load_json(shapes_world.path("pretrain_en")):
        for region in item["bbox_info"]:
            pos = TEXT_TO_SPEC["en"][region["short_expr"]]
            for text, stated in zip(region["short_expr_negs"].values(), region["neg_changes"]):
                assert pos.differences(TEXT_TO_SPEC["en"][text]) == stated
                changes += stated
    assert "kind" in changes  # the caption must name the shape to beat these negatives
    for it in read_jsonl(shapes_world.root / "fgovd" / "hard.jsonl"):  # FG-OVD keeps the kind, as FG-OVD does
        pos = TEXT_TO_SPEC["en"][it["pos_expression"][0]]
        assert all(TEXT_TO_SPEC["en"][n].kind == pos.kind for n in it["neg_expression"])


def test_six_kinds_world_has_its_kinds_as_classes_and_bare_name_regions(six_kinds_world):
    """The demo's world: its six kinds are the classes of every file (ids 1..6, label maps too),
    star and crescent novel; every region's short expression is the bare kind against the other five
    kinds' names (then undrawn kinds), its long expression the full description."""
    from fgclip2_det.datasets.synthetic.vocab import PROFILES

    w, profile = six_kinds_world, PROFILES["six_kinds"]
    assert w.classes == ("circle", "square", "triangle", "star", "cross", "crescent")
    assert w.novel_classes == ("star", "crescent") and w.base_classes == ("circle", "square", "triangle", "cross")
    assert w.meta["seg"]["classes"] == ["background", *w.classes]
    assert profile.metainfo() == {"classes": w.classes, "base_classes": w.base_classes,
                                  "novel_classes": w.novel_classes}
    val = load_json(w.path("det_val"))
    assert [(c["id"], c["name"]) for c in val["categories"]] == list(enumerate(w.classes, 1))
    assert {a["category_id"] for a in val["annotations"]} <= set(range(1, 7)) and val["annotations"]
    base_train = load_json(w.path("det_train_base"))
    names = {c["id"]: c["name"] for c in base_train["categories"]}
    assert {names[a["category_id"]] for a in base_train["annotations"]} <= set(w.base_classes)
    values = set()
    for p in (w.root / "seg" / "val").glob("*.png"):
        values |= set(np.unique(np.asarray(Image.open(p))).tolist())
    assert values <= set(range(7)) and len(values) > 3
    regions = [r for item in load_json(w.path("pretrain_en")) for r in item["bbox_info"]]
    assert regions
    for r in regions:
        kind = r["short_expr"].split(" ", 1)[1]
        assert r["short_expr"] in (f"a {kind}", f"an {kind}") and kind in w.classes
        negs = [n.split(" ", 1)[1] for n in r["short_expr_negs"].values()]
        assert len(negs) == 10 == len(set(negs)) and kind not in negs
        assert set(w.classes) - {kind} <= set(negs)  # every other drawn kind
        assert r["neg_changes"] == [["kind"]] * 10
        assert re.match(rf"a (small|medium|large) solid (red|blue) {kind} ", r["long_expr"]), r["long_expr"]
    zh = [r for item in load_json(w.path("pretrain_zh")) for r in item["bbox_info"]]
    assert all(r["short_expr"].startswith("一个") for r in zh)


def test_a_profile_with_unknown_kinds_or_a_bad_share_is_an_error():
    from fgclip2_det.datasets.synthetic.vocab import WorldProfile

    with pytest.raises(ValueError, match=r"unknown: \['blob'\]"):
        WorldProfile("p", kinds=("circle", "blob"))
    with pytest.raises(ValueError, match="non-empty"):
        WorldProfile("p", kinds=())
    with pytest.raises(ValueError, match="region_names is a share"):
        WorldProfile("p", region_names=1.5)


def test_unknown_profile_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown world profile 'nope'"):
        generate_world(tmp_path / "w", 10, profile="nope")
    assert not (tmp_path / "w").exists()
