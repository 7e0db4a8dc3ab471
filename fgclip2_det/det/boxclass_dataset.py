"""Box-classification datasets in COCO format: COCO val2017, LVIS v1 val, BoxClass-CN (official
fgclip2/eval/coco_box_ddp.py, fgclip2/eval/in1k/{lvis,laion_cn}_box_cls_ddp.py).

Differences from mmdet's ``CocoDataset`` on purpose, to follow the official evaluation:

* every annotation is kept, in file order: ``iscrowd`` boxes too (official COCO box eval;
  ``keep_crowd=False`` drops them), and tiny boxes (mmdet drops w or h < 1); zero-width/height boxes
  stay and get a zero region vector, i.e. a uniform score (documented in the box classifier);
* classes = the file's categories sorted by id, class index = position (COCO: category-id order;
  LVIS and BoxClass-CN: ``category_id - 1`` since their ids are 1..C);
* ``class_name_style='underscore_to_space'`` for LVIS ("baseball_bat" -> "baseball bat");
* ``img_path_from='coco_url'`` for LVIS (whose images have no ``file_name``): the last two URL parts,
  e.g. ``val2017/000000397133.jpg``, under ``data_prefix['img']``.

Images without annotations are skipped (they have no box to classify). A non-finite or negative-size
box is an error naming the file, the annotation id and the image.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from mmengine.dataset import BaseDataset
from mmengine.fileio import get_local_path
from mmdet.registry import DATASETS


@DATASETS.register_module()
class BoxClassDataset(BaseDataset):
    """One item per image with all its annotated boxes; ``metainfo['classes']`` from the file."""

    METAINFO = dict(classes=None)

    def __init__(self, *args, keep_crowd: bool = True, class_name_style: str = "as_is",
                 img_path_from: str = "file_name", **kwargs):
        if class_name_style not in ("as_is", "underscore_to_space"):
            raise ValueError(f"class_name_style must be 'as_is' or 'underscore_to_space', got {class_name_style!r}")
        if img_path_from not in ("file_name", "coco_url"):
            raise ValueError(f"img_path_from must be 'file_name' or 'coco_url', got {img_path_from!r}")
        self.keep_crowd = keep_crowd
        self.class_name_style = class_name_style
        self.img_path_from = img_path_from
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        with get_local_path(self.ann_file, backend_args=None) as local:
            try:
                coco = json.loads(Path(local).read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.ann_file}: not valid JSON ({err})") from err
        for key in ("images", "annotations", "categories"):
            if key not in coco:
                raise ValueError(f"{self.ann_file}: no '{key}' list; not a COCO-format annotation file")
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        label_of = {c["id"]: i for i, c in enumerate(categories)}
        names = tuple(self._class_name(c["name"]) for c in categories)
        given = self._metainfo.get("classes")
        if given is not None and tuple(given) != names:
            raise ValueError(f"metainfo classes differ from the categories of {self.ann_file}; the file "
                             "defines the classes here, remove metainfo['classes']")
        self._metainfo["classes"] = names

        per_image = defaultdict(list)
        for ann in coco["annotations"]:
            if ann.get("iscrowd", 0) and not self.keep_crowd:
                continue
            per_image[ann["image_id"]].append(self._instance(ann, label_of))
        data_list = []
        for img in coco["images"]:
            instances = per_image.get(img["id"])
            if not instances:
                continue
            data_list.append(dict(img_path=str(Path(self.data_prefix.get("img", "")) / self._file_of(img)),
                                  img_id=img["id"], height=img.get("height"), width=img.get("width"),
                                  instances=instances))
        return data_list

    def _class_name(self, name: str) -> str:
        return name.replace("_", " ") if self.class_name_style == "underscore_to_space" else name

    def _file_of(self, img: dict) -> str:
        if self.img_path_from == "coco_url":
            return "/".join(img["coco_url"].rsplit("/", 2)[-2:])
        return img["file_name"]

    def _instance(self, ann: dict, label_of: dict[int, int]) -> dict:
        where = f"{self.ann_file}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        if ann.get("category_id") not in label_of:
            raise ValueError(f"{where}: category_id {ann.get('category_id')} is not in 'categories'")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)):
            raise ValueError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = bbox
        if w < 0 or h < 0:
            raise ValueError(f"{where}: bbox has negative width or height: {bbox!r}")
        return dict(bbox=[x, y, x + w, y + h], bbox_label=label_of[ann["category_id"]], ignore_flag=0,
                    ann_id=ann.get("id"))
