"""Inference with any model of the toolkit on images, lists of images or folders, over a vocabulary
typed at run time: MMDetection's ``init_detector`` / ``inference_detector`` shape
(``mmdet/apis/inference.py``), for every open-vocabulary model.

    from fgclip2_det.apis import init_model, inference_model

    model = init_model("configs/ovd/fvit_fgclip2-base_ov-coco.py", "epoch_3.pth", device="cuda")
    samples = inference_model(model, "photos/", ["red car", ["dog", "狗"], "蓝色的杯子"], batch_size=4)

* ``FGCLIP2FViT`` (detector): ``pred_instances`` (bboxes, labels, scores) in original pixels;
* ``FGCLIP2Segmentor``: ``pred_sem_seg`` (1, H, W) class indices and ``seg_logits``;
* ``FGCLIP2BoxClassifier``: ``boxes=`` one (N, 4) array per image (original pixels) ->
  ``pred_instances`` with labels / scores / topk_labels / topk_scores per box;
* any other MMDetection detector runs too (no vocabulary: its own classes).

Labels index the vocabulary given (``model.set_vocabulary``, the contract of
:mod:`fgclip2_det.openvocab.contract`): a list of names or synonym lists, English or Chinese, any
size, or typed text (:func:`~.inputs.parse_vocabulary`). Images are read as the user sees them (PIL,
EXIF orientation applied) and arrays are RGB, unlike ``inference_detector``'s BGR; the config's test
pipeline then runs without its image loader and annotation loading.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..openvocab import Vocabulary
from .inputs import InputError, as_rgb_array, as_vocabulary, list_images, read_image

ANNOTATION_LOADERS = ("LoadAnnotations", "LoadPanopticAnnotations")
RGB_LOADERS = ("LoadFGCLIP2Image",)  # loaders that give RGB; mmcv's LoadImageFromFile gives BGR


def init_model(config, weights: str | Path | None = None, device: str | torch.device = "cpu",
               cfg_options: dict | None = None):
    """Build the config's model, load ``weights`` (a runner checkpoint or a bare state dict; None:
    FG-CLIP 2 models load their backbone from the checkpoint folder the config names), and put it
    in eval mode on ``device``. ``cfg_options`` are merged first, e.g.
    ``{"model.backbone.checkpoint": "checkpoints/fg-clip2-base"}``.

    ``model.dataset_meta`` is the checkpoint's, else the config's test-set metainfo (never
    MMDetection's COCO default). Missing files raise ``FileNotFoundError`` naming them."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmdet.registry import MODELS

    from .. import det, seg  # noqa: F401  registers the toolkit's models and transforms

    if isinstance(config, (str, Path)):
        if not Path(config).is_file():
            raise FileNotFoundError(f"config file not found: {config}")
        config = Config.fromfile(str(config))
    else:
        config = copy.deepcopy(config)
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    if cfg_options:
        config.merge_from_dict(cfg_options)
    init_default_scope(config.get("default_scope", "mmdet"))
    model = MODELS.build(config.model)
    meta = {}
    if weights is not None:
        checkpoint = load_checkpoint(model, str(weights), map_location="cpu")
        meta = dict((checkpoint.get("meta") or {}).get("dataset_meta") or {}) if isinstance(checkpoint, dict) else {}
    meta = meta or dict(_test_dataset(config).get("metainfo") or {})
    if meta:
        model.dataset_meta = meta
    model.cfg = config
    return model.to(device).eval()


def use_vocabulary(model, vocabulary: str | Vocabulary, novel_classes: Sequence[str] = ()) -> list:
    """``model.set_vocabulary(vocabulary, novel_classes)`` unless the model already has it; returns
    the vocabulary as a list. A model without vocabulary (closed-set) or a bad vocabulary is an
    :class:`InputError`."""
    vocab = as_vocabulary(vocabulary)
    if not hasattr(model, "set_vocabulary"):
        raise InputError(f"{type(model).__name__} has a fixed set of classes and takes no vocabulary")
    novel = tuple(novel_classes or ())
    if getattr(model, "classes", None) != vocab or tuple(getattr(model, "novel_classes", ())) != novel:
        try:
            model.set_vocabulary(vocab, novel)
        except ValueError as err:  # e.g. two names equal once lower-cased, a novel name not in it
            raise InputError(f"vocabulary: {err}") from err
    return vocab


@torch.no_grad()
def inference_model(model, images, vocabulary: str | Vocabulary | None = None, novel_classes: Sequence[str] = (),
                    boxes=None, batch_size: int = 1, progress: bool | None = None):
    """Run ``model`` on ``images`` over ``vocabulary`` (None: the one it has).

    ``images``: a file, a folder (its images, sorted), an (H, W, 3) RGB array, or a list of files and
    arrays. ``boxes`` (box classifier): one (N, 4) xyxy array per image, in its original pixels.
    Returns one ``DetDataSample`` per image, in order (a single file or array: the sample itself, as
    ``inference_detector``). Images run ``batch_size`` at a time (an image's result does not depend
    on its batch-mates); ``progress`` shows a tqdm bar (default: for folders). An unreadable image
    raises :class:`InputError` naming it."""
    single = isinstance(images, np.ndarray) or (isinstance(images, (str, Path)) and not Path(images).is_dir())
    items = list_images(images)
    if boxes is not None:
        boxes = [boxes] if single else list(boxes)
        if len(boxes) != len(items):
            raise InputError(f"got {len(boxes)} box arrays for {len(items)} images")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if vocabulary is not None:
        use_vocabulary(model, vocabulary, novel_classes)
    pipeline, rgb = build_test_pipeline(model.cfg)
    if progress is None:
        progress = isinstance(images, (str, Path)) and Path(images).is_dir()
    results = []
    with tqdm(total=len(items), desc="inference", unit="image", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = [pipeline(_pipeline_input(items[i], i, rgb, None if boxes is None else boxes[i]))
                     for i in range(start, min(start + batch_size, len(items)))]
            data = {"inputs": [b["inputs"] for b in batch], "data_samples": [b["data_samples"] for b in batch]}
            results.extend(model.test_step(data))
            bar.update(len(batch))
    return results[0] if single else results


def build_test_pipeline(cfg):
    """The config's test pipeline without its image loader and annotation loaders, built in mmdet's
    registry; and whether its loader gave RGB (else BGR, mmcv's order)."""
    from mmengine.dataset import Compose
    from mmdet.registry import TRANSFORMS

    steps = [copy.deepcopy(t) for t in (_test_dataset(cfg).get("pipeline") or cfg.get("test_pipeline") or [])]
    kinds = [str(t["type"]).split(".")[-1] for t in steps]
    if not kinds or "Load" not in kinds[0] or "Image" not in kinds[0]:
        raise ValueError(f"the config's test pipeline must start with an image loader, got {kinds[:1]}")
    rgb = kinds[0] in RGB_LOADERS or steps[0].get("channel_order", "bgr") == "rgb"
    return Compose([TRANSFORMS.build(t) for t, k in zip(steps[1:], kinds[1:]) if k not in ANNOTATION_LOADERS]), rgb


def _test_dataset(cfg) -> dict:
    dataset = (cfg.get("test_dataloader") or {}).get("dataset") or {}
    while "pipeline" not in dataset and "dataset" in dataset:  # dataset wrappers
        dataset = dataset["dataset"]
    return dataset


def _pipeline_input(item, index: int, rgb: bool, boxes) -> dict:
    """What the config's loader would have produced for one image (+ boxes as GT boxes)."""
    if isinstance(item, np.ndarray):
        image, path = as_rgb_array(item, f"image {index}"), None
    else:
        image, path = read_image(item), str(item)
    image = image if rgb else np.ascontiguousarray(image[..., ::-1])
    results = dict(img=image, img_path=path, img_id=index, img_shape=image.shape[:2], ori_shape=image.shape[:2])
    if boxes is not None:
        from mmdet.structures.bbox import HorizontalBoxes

        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        results["gt_bboxes"] = HorizontalBoxes(boxes)
        results["gt_bboxes_labels"] = np.zeros(len(boxes), dtype=np.int64)
    return results
