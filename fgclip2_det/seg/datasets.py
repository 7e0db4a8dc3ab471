"""Semantic-segmentation datasets for open-vocabulary evaluation (the CAT-Seg protocol,
docs/official_code.md).

``OVSegDataset`` is MMDetection's ``BaseSegDataset`` (image folder + label-map folder, or a split
file) with what open-vocabulary benchmarks need on top:

* class names from ``metainfo`` or, for the long vocabularies (ADE20K-847, Pascal Context-459), from
  the benchmark's own name file (``class_names_file``, one name per line, in label order), so the
  toolkit does not ship copies of those lists;
* ``novel_classes`` in ``metainfo`` for seen/unseen mIoU (the synthetic world);
* ``list_from='seg_maps'`` lists the label maps and finds each image by its stem, for layouts whose
  image folder holds several splits (the synthetic world).

Label maps hold class indices, 255 = ignore. A value outside the vocabulary is an error naming the
file (``OVSemSegMetric`` and the segmentor's loss check it); an image and a label map of different
sizes are an error too.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path

from mmdet.datasets.base_semseg_dataset import BaseSegDataset
from mmdet.registry import DATASETS

VOC20_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                 "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                 "tvmonitor")
PASCAL_CONTEXT59_CLASSES = (
    "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle", "building",
    "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain", "dog",
    "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "pottedplant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "table", "track", "train", "tree", "truck", "tvmonitor", "wall",
    "water", "window", "wood")


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """One class name per line (blank lines skipped); an empty or missing file is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class-name file not found: {path}")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


@DATASETS.register_module()
class OVSegDataset(BaseSegDataset):
    """Args (besides ``BaseSegDataset``'s):
        class_names_file: names in label order (overrides ``metainfo['classes']``).
        list_from: 'images' (MMDetection's default: every image, its label map by name) or
            'seg_maps' (every label map, its image by stem under ``data_prefix['img_path']``).
    """

    def __init__(self, *args, class_names_file: str | None = None, list_from: str = "images",
                 img_suffix: str = ".jpg", seg_map_suffix: str = ".png", metainfo: dict | None = None,
                 **kwargs):
        if list_from not in ("images", "seg_maps"):
            raise ValueError(f"list_from must be 'images' or 'seg_maps', got {list_from!r}")
        self.list_from = list_from
        metainfo = dict(metainfo or {})
        if class_names_file is not None:
            root = kwargs.get("data_root") or ""
            metainfo["classes"] = read_class_names(osp.join(root, class_names_file))
        if not metainfo.get("classes") and not self.METAINFO.get("classes"):
            raise ValueError("OVSegDataset needs metainfo['classes'] or class_names_file")
        classes = metainfo.get("classes") or self.METAINFO["classes"]
        missing = [n for n in metainfo.get("novel_classes", ()) if n not in classes]
        if missing:
            raise ValueError(f"metainfo['novel_classes'] names classes not in metainfo['classes']: {missing[:10]}")
        super().__init__(*args, img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> list[dict]:
        if self.list_from == "images":
            return super().load_data_list()
        img_dir, ann_dir = Path(self.data_prefix["img_path"]), Path(self.data_prefix["seg_map_path"])
        data_list = []
        for seg in sorted(ann_dir.glob(f"*{self.seg_map_suffix}")):
            img = img_dir / (seg.name[: -len(self.seg_map_suffix)] + self.img_suffix)
            if not img.is_file():
                raise FileNotFoundError(f"{seg}: no image {img} for this label map")
            data_list.append(dict(img_path=str(img), seg_map_path=str(seg), label_map=self.label_map,
                                  reduce_zero_label=False, seg_fields=[]))
        if not data_list:
            raise FileNotFoundError(f"no label maps (*{self.seg_map_suffix}) in {ann_dir}")
        return data_list


@DATASETS.register_module()
class VOC20SegDataset(OVSegDataset):
    """Pascal VOC 2012 val without background (VOC-20): label 0 = aeroplane ... 19 = tvmonitor,
    background pixels = 255 (the label maps of the usual zero-shot preparation)."""

    METAINFO = dict(classes=VOC20_CLASSES)


@DATASETS.register_module()
class VOC21SegDataset(OVSegDataset):
    """Pascal VOC 2012 val with background (VOC-21): label 0 = background."""

    METAINFO = dict(classes=("background",) + VOC20_CLASSES)


@DATASETS.register_module()
class PascalContext59SegDataset(OVSegDataset):
    """Pascal Context val, 59 classes (label 0..58, 255 = the rest)."""

    METAINFO = dict(classes=PASCAL_CONTEXT59_CLASSES)
