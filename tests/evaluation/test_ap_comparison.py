"""AP50 comparison (fgclip2_det/evaluation/ap_comparison.py, CLI tools/compare_ap50.py): AP50 equal to
pycocotools', paired bootstrap intervals, the name-rotation control."""
from __future__ import annotations

import contextlib
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tool_helpers import load_tool

CLASSES = ("a", "b", "c", "d", "e")
BASE, NOVEL = ("a", "b", "c"), ("d", "e")


@pytest.fixture(scope="module")
def tool():
    """The maths live in the package; the tool is its command line."""
    from fgclip2_det.evaluation import ap_comparison

    return ap_comparison


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """60 images of 2-3 boxes each, categories 1-5 = classes a-e."""
    root = tmp_path_factory.mktemp("ap50")
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(60):
        images.append(dict(id=100 + i, file_name=f"{i}.jpg", width=200, height=200))
        for _ in range(int(rng.integers(2, 4))):
            x, y, w = (float(v) for v in rng.uniform(0, 120, 3))
            anns.append(dict(id=len(anns) + 1, image_id=100 + i, category_id=int(rng.integers(1, 6)),
                             bbox=[x, y, w + 20, w + 20], area=(w + 20) ** 2, iscrowd=0))
    cats = [dict(id=k + 1, name=n) for k, n in enumerate(CLASSES)]
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps(dict(images=images, annotations=anns, categories=cats)))
    config = root / "cfg.py"
    config.write_text(f"test_dataloader = dict(dataset=dict(metainfo=dict(classes={CLASSES!r}, "
                      f"base_classes={BASE!r}, novel_classes={NOVEL!r})))\n")
    return dict(root=root, ann=str(ann_file), config=str(config), images=images, anns=anns)


def make_dump(world, path, hit_rate: dict, seed: int) -> str:
    """Per ground truth, a jittered box of its class with probability ``hit_rate[class]``, plus
    random false positives of every class; labels are class indices (category id - 1)."""
    rng = np.random.default_rng(seed)
    by_image = {im["id"]: [] for im in world["images"]}
    for a in world["anns"]:
        by_image[a["image_id"]].append(a)
    dump = []
    for img_id, anns in by_image.items():
        boxes, scores, labels = [], [], []
        for a in anns:
            x, y, w, h = a["bbox"]
            if rng.random() < hit_rate[CLASSES[a["category_id"] - 1]]:
                boxes.append([x + 1, y + 1, x + w, y + h]), scores.append(rng.uniform(0.3, 1.0))
                labels.append(a["category_id"] - 1)
        for _ in range(3):
            x, y = rng.uniform(0, 150, 2)
            boxes.append([x, y, x + 30, y + 30]), scores.append(rng.uniform(0.0, 0.8))
            labels.append(int(rng.integers(0, 5)))
        dump.append(dict(img_id=img_id, pred_instances=dict(
            bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), scores=torch.tensor(scores),
            labels=torch.tensor(labels, dtype=torch.long))))
    with open(path, "wb") as f:
        pickle.dump(dump, f)
    return str(path)


def cocoeval_ap50(world, dump_path, names):
    """Reference: pycocotools as OVCocoMetric runs it (IoU 0.50:0.95 grid, maxDets 100/300/1000)."""
    from mmdet.datasets.api_wrappers import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(world["ann"])
        cat_ids = gt.get_cat_ids(cat_names=CLASSES)
        with open(dump_path, "rb") as f:
            dump = pickle.load(f)
        res = []
        for r in dump:
            p = r["pred_instances"]
            for (x1, y1, x2, y2), s, lab in zip(p["bboxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
                res.append(dict(image_id=r["img_id"], category_id=cat_ids[lab], bbox=[x1, y1, x2 - x1, y2 - y1], score=s))
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.params.catIds, ev.params.maxDets = cat_ids, [100, 300, 1000]
        ev.evaluate(), ev.accumulate()
    idx = [cat_ids.index(gt.get_cat_ids(cat_names=[n])[0]) for n in names]
    p = ev.eval["precision"][0, :, idx, 0, -1]
    return float(np.mean(p[p > -1]))


def test_ap50_matches_pycocotools_and_identical_dumps_differ_by_zero(tool, world):
    rates = dict(a=0.9, b=0.6, c=0.3, d=0.5, e=0.2)
    a = make_dump(world, world["root"] / "a.pkl", rates, seed=1)
    table = tool.compare(world["config"], world["ann"], a, a, samples=50)
    assert table["base"]["a"] == pytest.approx(cocoeval_ap50(world, a, BASE), abs=1e-9)
    assert table["novel"]["a"] == pytest.approx(cocoeval_ap50(world, a, NOVEL), abs=1e-9)
    assert 0.1 < table["novel"]["a"] < 0.6
    for group in ("base", "novel"):
        r = table[group]
        assert r["diff"] == r["low"] == r["high"] == 0.0 and r["share_positive"] == 0.0


def test_better_novel_detections_give_a_positive_interval(tool, world):
    a = make_dump(world, world["root"] / "weak.pkl", dict(a=0.8, b=0.8, c=0.8, d=0.2, e=0.2), seed=2)
    b = make_dump(world, world["root"] / "strong.pkl", dict(a=0.8, b=0.8, c=0.8, d=0.9, e=0.9), seed=2)
    table = tool.compare(world["config"], world["ann"], a, b, samples=200)
    novel = table["novel"]
    assert novel["b"] == pytest.approx(cocoeval_ap50(world, b, NOVEL), abs=1e-9)
    assert novel["diff"] > 0.3 and 0 < novel["low"] < novel["diff"] < novel["high"]
    assert novel["share_positive"] == 1.0
    assert abs(table["base"]["diff"]) < 0.05  # same base draws (same seed, same rates)


def test_rotating_novel_names_removes_what_was_recognised(tool, world):
    """Perfectly named novel boxes lose their AP once the names rotate; base classes are untouched."""
    a = make_dump(world, world["root"] / "named.pkl", dict(a=0.5, b=0.5, c=0.5, d=1.0, e=1.0), seed=3)
    table = tool.compare(world["config"], world["ann"], a, a, samples=10, shuffle_control=True)
    assert table["novel"]["a"] > 0.7
    assert table["novel, names rotated"]["a"] < 0.2
    gap = table["novel, real - rotated names"]
    assert gap["a"] == pytest.approx(table["novel"]["a"] - table["novel, names rotated"]["a"])
    assert 0 < gap["a_low"] < gap["a"] < gap["a_high"]
    with open(a, "rb") as f:
        dump = pickle.load(f)
    rotated = tool.rotate_labels(dump, [3, 4], 1)
    for before, after in zip(dump, rotated):
        old, new = before["pred_instances"]["labels"], after["pred_instances"]["labels"]
        assert torch.equal(new, torch.where(old == 3, 4, torch.where(old == 4, 3, old)))


def test_a_dump_without_detections_scores_zero(tool, world, tmp_path):
    good = make_dump(world, tmp_path / "good.pkl", dict.fromkeys(CLASSES, 0.8), seed=5)
    empty = tmp_path / "empty.pkl"
    with open(empty, "wb") as f:
        pickle.dump([dict(img_id=im["id"], pred_instances=dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                                                  labels=torch.zeros(0, dtype=torch.long)))
                     for im in world["images"]], f)
    table = tool.compare(world["config"], world["ann"], str(empty), good, samples=50)
    assert table["novel"]["a"] == table["base"]["a"] == 0.0
    assert table["novel"]["diff"] == pytest.approx(table["novel"]["b"]) and table["novel"]["low"] > 0


def test_bad_dumps_name_the_problem(tool, world, tmp_path):
    good = make_dump(world, tmp_path / "good.pkl", dict.fromkeys(CLASSES, 0.5), seed=4)
    stray = tmp_path / "stray.pkl"
    with open(stray, "wb") as f:
        pickle.dump([dict(img_id=999, pred_instances=dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                                            labels=torch.zeros(0, dtype=torch.long)))], f)
    with pytest.raises(ValueError, match=r"stray\.pkl: images \[999\] are not in"):
        tool.compare(world["config"], world["ann"], good, str(stray), samples=5)
    raw = tmp_path / "raw.pkl"
    with open(raw, "wb") as f:
        pickle.dump([dict(img_id=100)], f)
    with pytest.raises(ValueError, match=r"raw\.pkl: record 0 has no pred_instances"):
        tool.compare(world["config"], world["ann"], good, str(raw), samples=5)
    wrong_labels = tmp_path / "labels.pkl"
    with open(wrong_labels, "wb") as f:
        pickle.dump([dict(img_id=100, pred_instances=dict(bboxes=torch.zeros(1, 4), scores=torch.ones(1),
                                                            labels=torch.tensor([7])))], f)
    with pytest.raises(ValueError, match=r"labels\.pkl: record 0 \(image 100\) has labels outside the config's 5"):
        tool.compare(world["config"], world["ann"], good, str(wrong_labels), samples=5)
    not_a_list = tmp_path / "dict.pkl"
    with open(not_a_list, "wb") as f:
        pickle.dump(dict(img_id=100), f)
    with pytest.raises(ValueError, match=r"dict\.pkl: a dict, not the list of records"):
        tool.compare(world["config"], world["ann"], good, str(not_a_list), samples=5)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(Path(good).read_bytes()[:50])
    with pytest.raises(ValueError, match=r"cut\.pkl: not a readable pickle"):
        tool.compare(world["config"], world["ann"], good, str(truncated), samples=5)
    bare = tmp_path / "bare.py"
    bare.write_text("test_dataloader = dict(dataset=dict(metainfo=dict(classes=('a',))))\n")
    with pytest.raises(ValueError, match="no base_classes, novel_classes"):
        tool.compare(str(bare), world["ann"], good, good, samples=5)


def test_the_command_line_prints_the_table_of_compare(tool, world, capsys):
    """tools/compare_ap50.py is a thin CLI: the table it returns and prints is ``compare``'s."""
    a = make_dump(world, world["root"] / "cli_a.pkl", dict(a=0.5, b=0.5, c=0.5, d=1.0, e=0.2), seed=6)
    b = make_dump(world, world["root"] / "cli_b.pkl", dict(a=0.5, b=0.5, c=0.5, d=0.2, e=1.0), seed=7)
    table = load_tool("compare_ap50").main([world["config"], world["ann"], a, b, "--samples", "20", "--seed", "3",
                                            "--shuffle-control"])
    assert table == tool.compare(world["config"], world["ann"], a, b, samples=20, seed=3, shuffle_control=True)
    printed = capsys.readouterr().out
    assert printed == tool.markdown_table(table) + "\n"
    novel = table["novel"]
    assert (f"| novel | {novel['a']:.4f} | {novel['b']:.4f} | {novel['diff']:+.4f} | {novel['low']:+.4f} to "
            f"{novel['high']:+.4f} | {novel['share_positive']:.1%} |") in printed.splitlines()
    assert printed.count("\n| novel AP50 | A | B |") == 1 and "| names rotated (mean of the shifts) |" in printed
