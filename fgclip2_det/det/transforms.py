"""Data transforms that reproduce FG-CLIP 2's official image preprocessing inside an mmdet pipeline.

Box-classification pipeline (configs/_base_/datasets/boxclass_*.py)::

    LoadFGCLIP2Image()            # PIL decode -> RGB uint8, like FGCLIP2ImageProcessor
    LoadAnnotations(with_bbox=True)
    NaFlexResize()                # official NaFlex size + PIL bilinear on uint8; boxes scaled along
    PackDetInputs(meta_keys=...)  # + DetDataPreprocessor(mean=std=127.5, bgr_to_rgb=False)

``DetDataPreprocessor`` then computes (x - 127.5) / 127.5, which equals the processor's
(x / 255 - 0.5) / 0.5 up to float rounding (<= 1e-6; tests pin it).
"""
from __future__ import annotations

import io

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmdet.registry import TRANSFORMS
from PIL import Image, ImageOps, UnidentifiedImageError

from ..model.boxes import rescale_boxes
from ..model.image_processor import dynamic_budget, naflex_size, to_rgb_uint8


@TRANSFORMS.register_module()
class LoadFGCLIP2Image(BaseTransform):
    """Decode ``results['img_path']`` as :class:`FGCLIP2ImageProcessor` does: PIL, EXIF orientation
    applied, then ``to_rgb_uint8`` (grayscale replicated, alpha dropped, 16-bit scaled by 1/257).
    Sets ``img`` (H, W, 3) uint8 **RGB**, ``img_shape`` and ``ori_shape``.

    ``exif_orientation=False`` keeps the stored pixel layout, as the official evaluation scripts
    do (``Image.open(path).convert("RGB")``); the box-classification and FG-OVD configs use it, since
    their annotations refer to that layout. mmcv's ``LoadImageFromFile`` differs on 16-bit
    (clipped, not scaled), LA images (composited on a colour) and, with the cv2 backend, possibly
    on JPEG decoding; hence this loader."""

    def __init__(self, exif_orientation: bool = True, backend_args: dict | None = None):
        self.exif_orientation = exif_orientation
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        path = results["img_path"]
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"image file not found: {path}") from err
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                if self.exif_orientation:
                    img = ImageOps.exif_transpose(img)
                rgb = np.array(to_rgb_uint8(img))  # writable: later transforms may edit it
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
        results["img"] = rgb
        results["img_shape"] = rgb.shape[:2]
        results["ori_shape"] = rgb.shape[:2]
        return results


@TRANSFORMS.register_module()
class NaFlexResize(BaseTransform):
    """FG-CLIP 2's NaFlex resize of ``results['img']`` (uint8 (H, W, 3)).

    Size: the largest aspect-preserving size whose 16-px patch grid fits the token budget (sides
    multiples of 16, small images upscaled), budget = ``max_num_patches`` or, if None, the official
    dynamic bucket of the native size (128 ... 1024). Pixels: PIL BILINEAR on uint8, as the official
    processor. The resize works per channel, so RGB or BGR input keeps its order.

    Like mmdet's ``Resize`` it sets ``img_shape``, ``scale_factor`` = (w_scale, h_scale),
    ``keep_ratio`` and rescales ``gt_bboxes``; boxes are **not** clipped (the official eval feeds
    the raw box to RoIAlign). Also records ``naflex_budget``.

    Boxes are scaled as ``(x / W) * W'`` in float64, then stored as float32, not as mmdet's
    ``x * (W' / W)`` in float32: divided by 16 (exact) this is bit for bit the official grid
    coordinate ``(x / W) * w`` (coco_box_ddp.py). It matters because RoIAlign's adaptive sampling
    takes ``ceil`` of the box size on the grid: a box reaching the image edge would otherwise come
    out as 6.0000005 cells instead of 6 and get 7 sample rows instead of 6.
    """

    def __init__(self, max_num_patches: int | None = None, patch_size: int = 16):
        if max_num_patches is not None and not (isinstance(max_num_patches, int) and max_num_patches > 0):
            raise ValueError(f"max_num_patches must be None or a positive int, got {max_num_patches!r}")
        self.max_num_patches = max_num_patches
        self.patch_size = patch_size

    def transform(self, results: dict) -> dict:
        img = results["img"]
        where = results.get("img_path", "<in-memory image>")
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            raise TypeError(f"{where}: NaFlexResize expects a uint8 (H, W, 3) image, got "
                            f"{getattr(img, 'dtype', type(img))} of shape {getattr(img, 'shape', None)}; "
                            "load with LoadFGCLIP2Image")
        height, width = img.shape[:2]
        budget = self.max_num_patches or dynamic_budget(height, width, self.patch_size)
        new_h, new_w = naflex_size(height, width, budget, self.patch_size)
        resized = Image.fromarray(np.ascontiguousarray(img)).resize((new_w, new_h), resample=Image.BILINEAR)
        results["img"] = np.array(resized)
        results["img_shape"] = (new_h, new_w)
        results["scale_factor"] = (new_w / width, new_h / height)
        results["keep_ratio"] = True
        results["naflex_budget"] = budget
        if results.get("gt_bboxes") is not None:
            results["gt_bboxes"] = _rescale_boxes(results["gt_bboxes"], (height, width), (new_h, new_w))
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_num_patches={self.max_num_patches}, patch_size={self.patch_size})"


def _rescale_boxes(boxes, src: tuple[int, int], dst: tuple[int, int]):
    """xyxy boxes (mmdet box type or array) from an image of size ``src`` (H, W) to ``dst``: x / W * W'
    in float64 (see NaFlexResize), returned as the same type in float32."""
    data = boxes.tensor if hasattr(boxes, "tensor") else torch.as_tensor(np.asarray(boxes))
    scaled = rescale_boxes(data, src, dst)
    if hasattr(boxes, "tensor"):
        return type(boxes)(scaled)
    return scaled.numpy()
