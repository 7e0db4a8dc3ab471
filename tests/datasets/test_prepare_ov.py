"""OV-COCO / OV-LVIS class splits and the tools that write the open-vocabulary annotation files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fgclip2_det.datasets.ov_splits import (OV_COCO_BASE_CLASSES, OV_COCO_CLASSES, OV_COCO_NOVEL_CLASSES,
                                            lvis_metainfo, lvis_split, ov_coco_metainfo, ov_coco_subset)
from tool_helpers import load_tool


# The 80 COCO 2017 categories with their real ids.
COCO_CATEGORIES = [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"), (7, "train"),
    (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"), (13, "stop sign"),
    (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"),
    (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"),
    (36, "snowboard"), (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"),
    (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"),
    (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush")]
COCO_IDS = {name: cat_id for cat_id, name in COCO_CATEGORIES}
EXCLUDED = ["traffic light", "fire hydrant", "stop sign", "parking meter", "sports ball", "baseball bat",
            "baseball glove", "tennis racket", "wine glass", "hot dog", "potted plant", "dining table",
            "cell phone", "teddy bear", "hair drier"]


@pytest.fixture(scope="module")
def coco_tool():
    return load_tool("prepare_ov_coco")


@pytest.fixture(scope="module")
def lvis_tool():
    return load_tool("prepare_ov_lvis")


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def read_json(path):
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- class lists

def test_ov_coco_class_lists():
    assert len(OV_COCO_BASE_CLASSES) == 48 and len(OV_COCO_NOVEL_CLASSES) == 17 and len(OV_COCO_CLASSES) == 65
    assert not set(OV_COCO_BASE_CLASSES) & set(OV_COCO_NOVEL_CLASSES)
    assert set(OV_COCO_BASE_CLASSES) | set(OV_COCO_NOVEL_CLASSES) == set(OV_COCO_CLASSES)
    assert not set(EXCLUDED) & set(OV_COCO_CLASSES) and len(EXCLUDED) == 15
    # Exact COCO names, each list in category-id order.
    coco_order = [name for _, name in COCO_CATEGORIES]
    assert list(OV_COCO_CLASSES) == [n for n in coco_order if n not in EXCLUDED]
    for names in (OV_COCO_BASE_CLASSES, OV_COCO_NOVEL_CLASSES):
        assert list(names) == sorted(names, key=COCO_IDS.__getitem__)
    meta = ov_coco_metainfo()
    assert meta == dict(classes=OV_COCO_CLASSES, base_classes=OV_COCO_BASE_CLASSES,
                        novel_classes=OV_COCO_NOVEL_CLASSES)


# ---------------------------------------------------------------- OV-COCO tool

def coco_ann(ann_id, image_id, name, iscrowd=0):
    return dict(id=ann_id, image_id=image_id, category_id=COCO_IDS[name], bbox=[1.0, 2.0, 10.0, 20.0],
                area=200.0, iscrowd=iscrowd, segmentation=[[1, 2, 11, 2, 11, 22]])


def coco_file(images, annotations, drop=()):
    return dict(info={"description": "toy"}, licenses=[{"id": 1, "name": "x"}],
                images=[dict(id=i, file_name=f"{i:012d}.jpg", width=64, height=48) for i in images],
                annotations=annotations,
                categories=[dict(id=i, name=n, supercategory="s") for i, n in COCO_CATEGORIES if n not in drop])


@pytest.fixture
def coco_files(tmp_path):
    train = coco_file([1, 2, 3, 4, 5, 6], [
        coco_ann(1, 1, "person"), coco_ann(2, 1, "dog"), coco_ann(3, 1, "traffic light"),  # base/novel/excluded
        coco_ann(4, 2, "person", iscrowd=1), coco_ann(5, 2, "car"),                         # crowd base box
        coco_ann(6, 3, "cat"), coco_ann(7, 3, "couch"),                                     # novel only
        coco_ann(8, 4, "dining table"),                                                     # excluded only
        coco_ann(9, 6, "tv"), coco_ann(10, 6, "hair drier")])                               # image 5: none
    val = coco_file([10, 11, 12], [
        coco_ann(11, 10, "person"), coco_ann(12, 10, "cat"), coco_ann(13, 10, "hot dog"),
        coco_ann(14, 12, "umbrella", iscrowd=1)])
    return write_json(tmp_path / "train.json", train), write_json(tmp_path / "val.json", val)


def test_prepare_ov_coco(coco_tool, coco_files, tmp_path, capsys):
    """With --val-all-images (every val image kept); the default is test_prepare_ov_coco_val_images."""
    train_path, val_path = coco_files
    out_dir = tmp_path / "ov"
    coco_tool.main(["--train", train_path, "--val", val_path, "--out-dir", str(out_dir), "--val-all-images"])

    train = read_json(out_dir / "instances_train2017_ov_base.json")
    assert [c["name"] for c in train["categories"]] == list(OV_COCO_CLASSES)
    assert all(c["id"] == COCO_IDS[c["name"]] and c["supercategory"] == "s" for c in train["categories"])
    assert [a["id"] for a in train["annotations"]] == [1, 4, 5, 9]
    assert all(a["category_id"] in {COCO_IDS[n] for n in OV_COCO_BASE_CLASSES} for a in train["annotations"])
    assert {a["id"]: a["iscrowd"] for a in train["annotations"]} == {1: 0, 4: 1, 5: 0, 9: 0}
    assert [im["id"] for im in train["images"]] == [1, 2, 6]  # 3 (novel only), 4 (excluded only), 5 dropped
    assert train["info"] == {"description": "toy"} and train["licenses"] == [{"id": 1, "name": "x"}]

    val = read_json(out_dir / "instances_val2017_ov_all.json")
    assert [c["name"] for c in val["categories"]] == list(OV_COCO_CLASSES)
    assert [a["id"] for a in val["annotations"]] == [11, 12, 14]
    assert {a["id"]: a["iscrowd"] for a in val["annotations"]} == {11: 0, 12: 0, 14: 1}
    assert [im["id"] for im in val["images"]] == [10, 11, 12]

    out = capsys.readouterr().out
    assert "3 images, 4 annotations (4 base / 0 novel), 65 categories (48 base / 17 novel)" in out
    assert "3 images, 3 annotations (1 base / 2 novel), 65 categories (48 base / 17 novel)" in out
    assert "train kept 4/10 annotations on 3/6 images; val kept 3/4 annotations on 3 images" in out


def test_prepare_ov_coco_val_images(coco_tool, coco_files, tmp_path, capsys):
    """By default the val file keeps exactly the images with an annotation of the 65 classes (a crowd
    one counts), as OVR-CNN's instances_val2017_all_2.json (4,836 of val2017's 5,000 images);
    --val-all-images keeps them all. Annotations, categories and the train file are the same either way."""
    train_path, _ = coco_files
    val = coco_file([10, 11, 12, 13, 14, 15, 16], [
        coco_ann(11, 10, "person"), coco_ann(12, 10, "cat"), coco_ann(13, 10, "hot dog"),  # base + novel + excluded
        coco_ann(14, 12, "umbrella", iscrowd=1),                                           # a novel crowd box only
        coco_ann(15, 13, "hot dog"), coco_ann(16, 13, "dining table"),                     # excluded classes only
        coco_ann(17, 14, "toothbrush"),                                                    # one base box
        coco_ann(18, 16, "scissors")])                                                     # one novel box; 11, 15: none
    val_path = write_json(tmp_path / "val7.json", val)
    coco_tool.main(["--train", train_path, "--val", val_path, "--out-dir", str(tmp_path / "ov")])
    coco_tool.main(["--train", train_path, "--val", val_path, "--out-dir", str(tmp_path / "all"), "--val-all-images"])
    default = read_json(tmp_path / "ov" / "instances_val2017_ov_all.json")
    every = read_json(tmp_path / "all" / "instances_val2017_ov_all.json")

    assert [im["id"] for im in default["images"]] == [10, 12, 14, 16]
    assert [im["id"] for im in every["images"]] == [10, 11, 12, 13, 14, 15, 16]
    ann_images = {a["image_id"] for a in default["annotations"]}
    assert {im["id"] for im in default["images"]} == ann_images  # exactly the images with an annotation
    assert default["images"][1] == val["images"][2]  # image entries kept as they are
    for out in (default, every):
        assert [a["id"] for a in out["annotations"]] == [11, 12, 14, 17, 18]
        assert [c["name"] for c in out["categories"]] == list(OV_COCO_CLASSES)
    assert read_json(tmp_path / "ov" / "instances_train2017_ov_base.json") == \
        read_json(tmp_path / "all" / "instances_train2017_ov_base.json")
    printed = capsys.readouterr().out
    assert "val kept 5/8 annotations on 4 images" in printed
    assert "val kept 5/8 annotations on 7 images" in printed


def test_ov_coco_subset():
    data = coco_file([1, 2, 3], [coco_ann(1, 1, "person"), coco_ann(2, 2, "cat"), coco_ann(3, 3, "hot dog")])
    base = ov_coco_subset(data, OV_COCO_BASE_CLASSES)
    assert [a["id"] for a in base["annotations"]] == [1] and [im["id"] for im in base["images"]] == [1]
    both = ov_coco_subset(data)  # all 65 classes, annotated images only: the default
    assert [a["id"] for a in both["annotations"]] == [1, 2] and [im["id"] for im in both["images"]] == [1, 2]
    assert [im["id"] for im in ov_coco_subset(data, annotated_images_only=False)["images"]] == [1, 2, 3]
    assert both["info"] == data["info"] and both["licenses"] == data["licenses"]
    assert data["annotations"][2]["id"] == 3 and len(data["images"]) == 3  # input untouched
    no_info = {k: v for k, v in data.items() if k not in ("info", "licenses")}
    assert set(ov_coco_subset(no_info)) == {"images", "annotations", "categories"}
    with pytest.raises(ValueError, match=r"^x\.json: OV-COCO categories missing from the file: cat, tv$"):
        ov_coco_subset(coco_file([1], [], drop=("cat", "tv")), source="x.json")


def test_prepare_ov_coco_errors(coco_tool, coco_files, tmp_path):
    train_path, val_path = coco_files
    out = ["--out-dir", str(tmp_path / "ov")]
    no_tv = write_json(tmp_path / "no_tv.json", coco_file([1], [], drop=("tv",)))
    with pytest.raises(SystemExit, match=r"no_tv\.json: OV-COCO categories missing from the file: tv$"):
        coco_tool.main(["--train", no_tv, "--val", val_path, *out])
    with pytest.raises(SystemExit, match=r"missing\.json: no such file"):
        coco_tool.main(["--train", train_path, "--val", str(tmp_path / "missing.json"), *out])
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(SystemExit, match=r"bad\.json: malformed JSON"):
        coco_tool.main(["--train", str(tmp_path / "bad.json"), "--val", val_path, *out])
    not_coco = write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(SystemExit, match=r"list\.json: not a COCO annotation file"):
        coco_tool.main(["--train", train_path, "--val", not_coco, *out])
    assert not (tmp_path / "ov").exists()


# ---------------------------------------------------------------- OV-LVIS

LVIS_CATEGORIES = [dict(id=1, name="aerosol_can", frequency="c"), dict(id=2, name="alligator", frequency="r"),
                   dict(id=3, name="apple", frequency="f"), dict(id=4, name="apron", frequency="f"),
                   dict(id=5, name="armoire", frequency="r"), dict(id=6, name="ashtray", frequency="c")]


def lvis_file(categories=LVIS_CATEGORIES):
    images = [dict(id=1, neg_category_ids=[5, 4], not_exhaustive_category_ids=[2]),
              dict(id=2, neg_category_ids=[1], not_exhaustive_category_ids=[]),
              dict(id=3)]
    anns = [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 5), (5, 3, 6), (6, 3, 4)]  # (id, image_id, category_id)
    return dict(info={}, licenses=[], images=images, categories=categories,
                annotations=[dict(id=i, image_id=im, category_id=c, bbox=[0, 0, 4, 4]) for i, im, c in anns])


def test_lvis_split_and_metainfo():
    shuffled = LVIS_CATEGORIES[::-1]
    assert lvis_split(shuffled) == (("aerosol_can", "apple", "apron", "ashtray"), ("alligator", "armoire"))
    assert lvis_metainfo(shuffled) == dict(
        classes=("aerosol_can", "alligator", "apple", "apron", "armoire", "ashtray"),
        base_classes=("aerosol_can", "apple", "apron", "ashtray"), novel_classes=("alligator", "armoire"))
    with pytest.raises(ValueError, match=r"LVIS category id 3 \('apple'\) has frequency None"):
        lvis_split([*LVIS_CATEGORIES[:2], dict(id=3, name="apple")])
    with pytest.raises(ValueError, match=r"id 4 \('apron'\) has frequency 'x'"):
        lvis_split([dict(c, frequency="x") if c["id"] == 4 else c for c in LVIS_CATEGORIES])


def test_prepare_ov_lvis(lvis_tool, tmp_path, capsys):
    train_path = write_json(tmp_path / "lvis_v1_train.json", lvis_file())
    val_path = write_json(tmp_path / "lvis_v1_val.json", lvis_file())
    lvis_tool.main(["--train", train_path, "--val", val_path, "--out-dir", str(tmp_path / "ov")])

    out = read_json(tmp_path / "ov" / "lvis_v1_train_norare.json")
    assert out["categories"] == LVIS_CATEGORIES
    assert [a["id"] for a in out["annotations"]] == [1, 3, 5, 6]
    assert not {a["category_id"] for a in out["annotations"]} & {2, 5}
    assert out["images"] == [dict(id=1, neg_category_ids=[4], not_exhaustive_category_ids=[]),
                             dict(id=2, neg_category_ids=[1], not_exhaustive_category_ids=[]),
                             dict(id=3)]
    assert out["info"] == {} and out["licenses"] == []

    printed = capsys.readouterr().out
    assert ("6 categories (4 base / 2 novel), 3 images, 4 annotations (4 base / 0 novel); rare ids removed from "
            "the neg_category_ids / not_exhaustive_category_ids of 1 / 1 images") in printed
    assert f"{val_path}: 6 categories (4 base / 2 novel), 3 images, 6 annotations (4 base / 2 novel)" in printed
    assert "train kept 4/6 annotations, removed 2 of the 2 rare categories" in printed


def test_prepare_ov_lvis_errors(lvis_tool, tmp_path):
    train_path = write_json(tmp_path / "train.json", lvis_file())
    out = ["--out-dir", str(tmp_path / "ov")]
    bad_cats = [dict(c, frequency="x") if c["id"] == 6 else c for c in LVIS_CATEGORIES]
    bad = write_json(tmp_path / "bad_freq.json", lvis_file(bad_cats))
    with pytest.raises(SystemExit, match=r"bad_freq\.json: LVIS category id 6 \('ashtray'\) has frequency 'x'"):
        lvis_tool.main(["--train", bad, *out])
    with pytest.raises(SystemExit, match=r"bad_freq\.json: LVIS category id 6"):
        lvis_tool.main(["--train", train_path, "--val", bad, *out])
    other = write_json(tmp_path / "other.json", lvis_file([dict(c, frequency="c") for c in LVIS_CATEGORIES]))
    with pytest.raises(SystemExit, match=r"other\.json: categories \(ids, names, frequencies\) differ"):
        lvis_tool.main(["--train", train_path, "--val", other, *out])
    with pytest.raises(SystemExit, match=r"missing\.json: no such file"):
        lvis_tool.main(["--train", str(tmp_path / "missing.json"), *out])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SystemExit, match=r"broken\.json: malformed JSON"):
        lvis_tool.main(["--train", str(tmp_path / "broken.json"), *out])
    assert not (tmp_path / "ov").exists()
