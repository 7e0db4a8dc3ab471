"""BoxClassDataset (COCO / LVIS / BoxClass-CN conventions) and FGOVDDataset (jsonl, errors with line)."""
from __future__ import annotations

import json

import pytest
from mmdet.registry import DATASETS

from det_helpers import mmdet_scope, write_coco_set  # noqa: F401  (mmdet_scope: autouse fixture)


def _boxclass(root, **kwargs):
    return DATASETS.build(dict(type="BoxClassDataset", data_root=str(root), ann_file="ann.json",
                               data_prefix=dict(img="img/"), test_mode=True, pipeline=[], **kwargs))


def test_boxclass_coco_conventions(tmp_path):
    write_coco_set(tmp_path)
    ds = _boxclass(tmp_path)
    assert ds.metainfo["classes"][:3] == ("aeroplane", "bicycle", "bird")  # sorted by id, index = position
    assert [d["img_id"] for d in ds] == [1, 2, 3]  # the image without boxes is skipped
    voc = ds[0]
    assert voc["img_path"] == str(tmp_path / "img" / "voc.jpg") and len(voc["instances"]) == 19
    first = voc["instances"][0]
    assert first["bbox"] == [220.0, 255.0, 260.0, 345.0] and first["bbox_label"] == 5 - 1
    assert all(i["ignore_flag"] == 0 for i in voc["instances"])  # the iscrowd box is kept (official)
    assert len(_boxclass(tmp_path, keep_crowd=False)[0]["instances"]) == 18


def test_boxclass_lvis_and_errors(tmp_path):
    coco = dict(images=[dict(id=7, coco_url="http://images.cocodataset.org/val2017/000000000007.jpg")],
                annotations=[dict(id=1, image_id=7, category_id=2, bbox=[1, 2, 0, 4])],
                categories=[dict(id=2, name="baseball_bat"), dict(id=1, name="aerosol_can")])
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    ds = _boxclass(tmp_path, class_name_style="underscore_to_space", img_path_from="coco_url")
    assert ds.metainfo["classes"] == ("aerosol can", "baseball bat")
    assert ds[0]["img_path"].endswith("img/val2017/000000000007.jpg")
    assert ds[0]["instances"][0] == dict(bbox=[1, 2, 1, 6], bbox_label=1, ignore_flag=0, ann_id=1)  # zero width kept

    coco["annotations"][0]["bbox"] = [1, float("nan"), 3, 4]
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"ann\.json: annotation 1 \(image 7\): bbox must be 4 finite"):
        _boxclass(tmp_path, img_path_from="coco_url")
    coco["annotations"][0].update(bbox=[1, 2, 3, 4], category_id=99)
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="category_id 99"):
        _boxclass(tmp_path, img_path_from="coco_url")
    with pytest.raises(ValueError, match="class_name_style"):
        _boxclass(tmp_path, class_name_style="snake")


def _write_jsonl(path, items):
    path.write_text("\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n")
    return path


ITEM = dict(img_path="val2017/a.jpg", bbox=[10, 20, 30, 40], pos_expression=["a red car"],
            neg_expression=["a blue car", "a green car"])


def test_fgovd_dataset(tmp_path):
    _write_jsonl(tmp_path / "h_attributes_llava.jsonl", [ITEM, "", dict(ITEM, neg_expression=["x"])])
    ds = DATASETS.build(dict(type="FGOVDDataset", data_root=str(tmp_path), ann_file="h_attributes_llava.jsonl",
                             data_prefix=dict(img="coco/"), test_mode=True, pipeline=[]))
    assert len(ds) == 2
    item = ds[0]
    assert item["test_type"] == "1_attributes" and item["img_path"] == str(tmp_path / "coco" / "val2017" / "a.jpg")
    assert item["instances"] == [dict(bbox=[10, 20, 40, 60], bbox_label=0, ignore_flag=0)]
    assert item["box_captions"] == [["a red car", "a blue car", "a green car"]]
    custom = DATASETS.build(dict(type="FGOVDDataset", ann_file=str(tmp_path / "h_attributes_llava.jsonl"),
                                 test_type="mine", pipeline=[]))
    assert custom[1]["test_type"] == "mine"


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({k: v for k, v in ITEM.items() if k != "bbox"}), r"missing key\(s\) \['bbox'\]"),
    (json.dumps(dict(ITEM, bbox=[1, 2, -3, 4])), "bbox must be"),
    (json.dumps(dict(ITEM, pos_expression=["a", "b"])), "pos_expression must be a list with one caption"),
    (json.dumps(dict(ITEM, neg_expression=[])), "neg_expression must be a non-empty list"),
])
def test_fgovd_malformed_line_names_file_and_line(tmp_path, line, message):
    path = _write_jsonl(tmp_path / "m_attributes_llava.jsonl", [ITEM, line])
    with pytest.raises(ValueError, match=rf"m_attributes_llava\.jsonl:2: {message}"):
        DATASETS.build(dict(type="FGOVDDataset", ann_file=str(path), pipeline=[]))


def test_fgovd_unknown_file_name(tmp_path):
    path = _write_jsonl(tmp_path / "mine.jsonl", [ITEM])
    with pytest.raises(ValueError, match="unknown FG-OVD file name; set test_type"):
        DATASETS.build(dict(type="FGOVDDataset", ann_file=str(path), pipeline=[]))
