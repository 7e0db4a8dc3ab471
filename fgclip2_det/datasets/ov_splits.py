"""Base/novel class splits of the open-vocabulary detection benchmarks.

OV-COCO uses the OVR-CNN split (Zareian et al., CVPR 2021): 48 base and 17 novel classes, 65 in all.
The other 15 COCO classes are not part of the benchmark: their annotations are dropped and they are
never scored. The lists match `F-ViT/datasets/mscoco_{seen,unseen,65}_classes.json`
(wusize/CLIPSelf) and mmdet `tools/dataset_converters/coco2ovd.py`.

Annotation files (``tools/prepare_ov_coco.py``, :func:`ov_coco_subset`): as OVR-CNN's
``filter_annotation`` (alirezazareian/ovr-cnn, ``ipynb/003.ipynb``), a file keeps the 65 categories,
the annotations of the classes it is for, and only the images with at least one of those
annotations (crowd ones included): the validation file ``instances_val2017_all_2.json`` has the
4,836 val2017 images with an annotation of the 65 classes, not all 5,000.

OV-LVIS: base = common + frequent (866), novel = rare (337), read from the `frequency` field of the
LVIS v1 categories, as Detic `tools/remove_lvis_rare.py` and F-ViT `lvis_v1_{seen,unseen}_classes.json`
do.

Both benchmarks are evaluated in the generalized setting: the model scores base and novel classes
jointly, so a dataset carries all of them in `classes` and says which are which in `base_classes` /
`novel_classes` (the keys mmdet's `OVCocoMetric` reads from `dataset_meta`).
"""
import json
from pathlib import Path

# COCO 2017 category names, in category-id order within each list.
OV_COCO_BASE_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "train", "truck", "boat", "bench", "bird", "horse",
    "sheep", "bear", "zebra", "giraffe", "backpack", "handbag", "suitcase", "frisbee", "skis", "kite",
    "surfboard", "bottle", "fork", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "pizza", "donut", "chair", "bed", "toilet", "tv", "laptop", "mouse",
    "remote", "microwave", "oven", "toaster", "refrigerator", "book", "clock", "vase", "toothbrush")

OV_COCO_NOVEL_CLASSES = (
    "airplane", "bus", "cat", "dog", "cow", "elephant", "umbrella", "tie", "snowboard", "skateboard",
    "cup", "knife", "cake", "couch", "keyboard", "sink", "scissors")

OV_COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "kite", "skateboard",
    "surfboard", "bottle", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "pizza", "donut", "cake", "chair", "couch", "bed", "toilet", "tv",
    "laptop", "mouse", "remote", "keyboard", "microwave", "oven", "toaster", "sink", "refrigerator",
    "book", "clock", "vase", "scissors", "toothbrush")

LVIS_NOVEL_FREQUENCIES = ("r",)
LVIS_BASE_FREQUENCIES = ("c", "f")


def ov_coco_metainfo():
    """MMDetection dataset `metainfo` for OV-COCO (65 classes, with the base/novel lists)."""
    return dict(classes=OV_COCO_CLASSES, base_classes=OV_COCO_BASE_CLASSES,
                novel_classes=OV_COCO_NOVEL_CLASSES)


def lvis_split(categories):
    """(base_names, novel_names) of LVIS category dicts, each in category-id order.

    Rare ('r') categories are novel, common ('c') and frequent ('f') ones base. A category without a
    valid `frequency` raises ValueError: guessing its bin would silently change the benchmark.
    """
    base, novel = [], []
    for cat in sorted(categories, key=lambda c: c["id"]):
        frequency = cat.get("frequency")
        if frequency in LVIS_NOVEL_FREQUENCIES:
            novel.append(cat["name"])
        elif frequency in LVIS_BASE_FREQUENCIES:
            base.append(cat["name"])
        else:
            raise ValueError(f"LVIS category id {cat['id']} ({cat.get('name')!r}) has frequency "
                             f"{frequency!r}; expected one of 'r', 'c', 'f'")
    return tuple(base), tuple(novel)


def lvis_metainfo(categories):
    """MMDetection dataset `metainfo` for OV-LVIS: all names in category-id order, plus the split."""
    base, novel = lvis_split(categories)
    classes = tuple(c["name"] for c in sorted(categories, key=lambda c: c["id"]))
    return dict(classes=classes, base_classes=base, novel_classes=novel)


def ov_coco_subset(data, keep_classes=OV_COCO_CLASSES, annotated_images_only=True, source="annotation file"):
    """Copy of a COCO-format dict restricted to the 65 OV-COCO categories (original ids and fields
    kept), to the annotations of ``keep_classes`` (crowd ones kept as they are) and, with
    ``annotated_images_only`` (OVR-CNN's rule, module doc), to the images holding at least one of
    them; otherwise every image is kept. ValueError naming ``source`` if an OV-COCO category is
    missing. ``info`` / ``licenses`` are carried over when present."""
    names = {c["name"] for c in data["categories"]}
    missing = [n for n in OV_COCO_CLASSES if n not in names]
    if missing:
        raise ValueError(f"{source}: OV-COCO categories missing from the file: {', '.join(missing)}")
    categories = [c for c in data["categories"] if c["name"] in OV_COCO_CLASSES]
    keep_ids = {c["id"] for c in categories if c["name"] in keep_classes}
    annotations = [a for a in data["annotations"] if a["category_id"] in keep_ids]
    images = data["images"]
    if annotated_images_only:
        image_ids = {a["image_id"] for a in annotations}
        images = [im for im in images if im["id"] in image_ids]
    out = {k: data[k] for k in ("info", "licenses") if k in data}
    out.update(images=images, annotations=annotations, categories=categories)
    return out


def load_annotation_json(path, kind="COCO"):
    """A parsed COCO-format file (LVIS is one too); ValueError naming the file if it is missing,
    malformed or lacks images / annotations / categories."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= data.keys():
        raise ValueError(f"{path}: not a {kind} annotation file (needs images, annotations, categories)")
    return data
