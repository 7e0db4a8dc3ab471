"""COCO / LVIS datasets that know their base/novel split (the OVR-CNN and LVIS v1 splits,
docs/official_code.md).

``metainfo`` carries ``classes``, ``base_classes`` and ``novel_classes`` (MMDetection's
``OVCocoMetric`` reads the last two; the detector weights and ensembles by them). With
``drop_novel_annotations=True`` (training configs) novel-class boxes are removed when the file is
read, so the detector never sees a novel box even if it is given a file that still has them; the
number removed is logged, and images left without boxes are filtered out in training (with
``filter_empty_gt``). Crowd boxes stay, as ignored instances (MMDetection's ``ignore_flag``).
"""
from __future__ import annotations

from mmengine.logging import print_log
from mmdet.datasets import CocoDataset, LVISV1Dataset
from mmdet.registry import DATASETS

from ..datasets.ov_splits import lvis_split, ov_coco_metainfo


def check_split(metainfo: dict, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(base, novel) of ``metainfo``; every name must be a class and the two must not overlap."""
    classes = tuple(metainfo.get("classes") or ())
    base = tuple(metainfo.get("base_classes") or ())
    novel = tuple(metainfo.get("novel_classes") or ())
    for key, names in (("base_classes", base), ("novel_classes", novel)):
        missing = [n for n in names if n not in classes]
        if missing:
            raise ValueError(f"{where}: metainfo['{key}'] names {len(missing)} class(es) that are not in "
                             f"metainfo['classes']: {missing[:10]}")
    both = sorted(set(base) & set(novel))
    if both:
        raise ValueError(f"{where}: classes both base and novel: {both[:10]}")
    return base, novel


class NovelFilterMixin:
    """Drops novel-class instances in ``parse_data_info`` when ``drop_novel_annotations``."""

    def _init_novel_filter(self, drop_novel_annotations: bool) -> None:
        self.drop_novel_annotations = drop_novel_annotations
        self.num_dropped_novel = 0
        self._novel_labels: set[int] | None = None

    def _novel_label_set(self) -> set[int]:
        if self._novel_labels is None:
            _, novel = check_split(self.metainfo, f"{type(self).__name__}({self.ann_file})")
            classes = list(self.metainfo["classes"])
            self._novel_labels = {classes.index(n) for n in novel}
        return self._novel_labels

    def _drop_novel(self, info: dict) -> dict:
        if not self.drop_novel_annotations:
            return info
        novel = self._novel_label_set()
        kept = [inst for inst in info["instances"] if inst["bbox_label"] not in novel]
        self.num_dropped_novel += len(info["instances"]) - len(kept)
        info["instances"] = kept
        return info

    def filter_data(self) -> list[dict]:
        """MMDetection's filter, then, with ``filter_empty_gt``, also the images whose only boxes were
        novel: kept, they would teach the detector that novel objects are background."""
        data_list = super().filter_data()
        if self.drop_novel_annotations and not self.test_mode and self.filter_cfg and \
                self.filter_cfg.get("filter_empty_gt", False):
            data_list = [d for d in data_list if d["instances"]]
        return data_list

    def _log_dropped(self) -> None:
        if self.drop_novel_annotations:
            print_log(f"{type(self).__name__}: dropped {self.num_dropped_novel} novel-class annotations "
                      f"from {self.ann_file}", logger="current")


def _ov_coco_default_metainfo() -> dict:
    """The OVR-CNN split, with each class's colour from MMDetection's COCO palette."""
    meta = ov_coco_metainfo()
    coco = CocoDataset.METAINFO
    colour = dict(zip(coco["classes"], coco["palette"]))
    return {**meta, "palette": [colour[c] for c in meta["classes"]]}


@DATASETS.register_module()
class OVCocoDataset(NovelFilterMixin, CocoDataset):
    """``CocoDataset`` with a base/novel split in ``metainfo``; by default OV-COCO's 65 classes
    (48 base, 17 novel). Other COCO-format sets (e.g. the synthetic world) pass their own."""

    METAINFO = _ov_coco_default_metainfo()

    def __init__(self, *args, drop_novel_annotations: bool = False, **kwargs):
        self._init_novel_filter(drop_novel_annotations)
        self._order_checked = False
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        if not self._fully_initialized:
            check_split(self.metainfo, f"OVCocoDataset({self.ann_file})")
        super().full_init()
        self._log_dropped()

    def parse_data_info(self, raw_data_info: dict):
        if hasattr(self, "coco") and not self._order_checked:
            self._check_category_order()  # the COCO object exists only while the file is parsed
        return self._drop_novel(super().parse_data_info(raw_data_info))

    def _check_category_order(self) -> None:
        """MMDetection numbers labels in the file's category order, while the class text embeddings
        follow ``metainfo['classes']``: any other order would silently pair boxes with wrong names."""
        self._order_checked = True
        classes = list(self.metainfo["classes"])
        in_file = [self.coco.cats[c]["name"] for c in self.cat_ids]
        if in_file != classes:
            missing = [c for c in classes if c not in in_file]
            detail = (f"{len(missing)} class(es) are not categories of the file: {missing[:10]}" if missing else
                      f"the file lists them as {in_file[:10]}{' ...' if len(in_file) > 10 else ''}")
            raise ValueError(f"OVCocoDataset({self.ann_file}): labels follow the file's category order, which "
                             f"must equal metainfo['classes'] ({classes[:10]}{' ...' if len(classes) > 10 else ''}); "
                             f"{detail}. Keep every class in the file's categories, in the same order")


@DATASETS.register_module()
class OVLVISDataset(NovelFilterMixin, LVISV1Dataset):
    """LVIS v1 with base = common + frequent and novel = rare, read from the annotation file's
    ``frequency`` field unless ``metainfo`` names them."""

    def __init__(self, *args, drop_novel_annotations: bool = False, **kwargs):
        self._init_novel_filter(drop_novel_annotations)
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        super().full_init()
        self._log_dropped()

    def parse_data_info(self, raw_data_info: dict):
        # MMDetection's loader frees its LVIS object once the file is parsed; the split is read
        # from it while it exists, i.e. before the first image is parsed.
        if "novel_classes" not in self._metainfo and hasattr(self, "lvis"):
            base, novel = lvis_split(self.lvis.load_cats(self.cat_ids))
            self._metainfo.update(base_classes=tuple(base), novel_classes=tuple(novel))
        return self._drop_novel(super().parse_data_info(raw_data_info))
