"""NaFlex image preprocessing for FG-CLIP 2 (SigLIP 2 NaFlex), in torch + PIL + numpy.

What the official pipeline does (transformers' ``Siglip2ImageProcessorPil`` plus FG-CLIP 2's
``dynamic_max_patches``): pick a token budget, resize the uint8 RGB image with PIL BILINEAR to the
largest aspect-preserving size whose 16-pixel patch grid fits that budget (sides rounded up to
multiples of 16, small images upscaled), rescale by 1/255 and normalise with mean = std = 0.5.

Differences from the official processor, on purpose:

* No patchify / token padding here: the model takes ``(3, H', W')`` tensors (README "The model
  API") and builds patches and masks itself.
* The dynamic budget is chosen **per image** from that image's native size. The official code picks
  it from the largest image in the call, so an image's pixels depended on its batch-mates; per image
  keeps every image's result independent of the batch (identical to the official one for a batch of
  one image).
* Boxes (xyxy, original pixels) are mapped to the resized image alongside.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .boxes import check_boxes, rescale_boxes

__all__ = [
    "FGCLIP2ImageProcessor",
    "ProcessedImages",
    "naflex_size",
    "dynamic_budget",
    "load_image",
    "to_rgb_uint8",
    "DYNAMIC_BUCKETS",
]

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor, str, Path]

#: (threshold, budget): the first bucket whose threshold the native patch count exceeds wins.
DYNAMIC_BUCKETS: tuple[tuple[int, int], ...] = ((784, 1024), (576, 784), (256, 576), (128, 256))
_SMALLEST_BUDGET = 128

# 16-bit PIL modes; Pillow's own convert("RGB") clips them at 255 instead of scaling.
_PIL_16BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


# --------------------------------------------------------------------------- sizes


def dynamic_budget(height: int, width: int, patch_size: int = 16) -> int:
    """Official ``dynamic_max_patches`` bucket for an image of native size ``height`` x ``width``.

    n = (W // p) * (H // p); 1024 if n > 784, 784 if n > 576, 576 if n > 256, 256 if n > 128, else 128.
    """
    _check_size(height, width)
    n = (width // patch_size) * (height // patch_size)
    for threshold, budget in DYNAMIC_BUCKETS:
        if n > threshold:
            return budget
    return _SMALLEST_BUDGET


def naflex_size(height: int, width: int, budget: int, patch_size: int = 16) -> tuple[int, int]:
    """Target ``(H', W')`` of the NaFlex resize for a ``budget`` of patches.

    Same binary search over the scale s as transformers' ``get_image_size_for_max_num_patches``
    (s in [1e-6, 100], stop when the interval is < 1e-5), so results match it exactly: keep the
    largest s with ceil(H*s/p) * ceil(W*s/p) <= budget, each side rounded up to a multiple of p and
    at least p.
    """
    _check_size(height, width)
    if not (isinstance(budget, (int, np.integer)) and budget >= 1):
        raise ValueError(f"budget must be a positive int, got {budget!r}")
    eps = 1e-5
    lo, hi = eps / 10, 100.0
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if _num_patches(mid, height, width, patch_size) <= budget:
            lo = mid
        else:
            hi = mid
    return _scaled_side(lo, height, patch_size), _scaled_side(lo, width, patch_size)


def _scaled_side(scale: float, size: int, patch_size: int) -> int:
    return int(max(patch_size, math.ceil(size * scale / patch_size) * patch_size))


def _num_patches(scale: float, height: int, width: int, patch_size: int) -> float:
    return (_scaled_side(scale, height, patch_size) / patch_size) * (
        _scaled_side(scale, width, patch_size) / patch_size
    )


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"image has zero size (height={height}, width={width})")


# --------------------------------------------------------------------------- decoding


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB, EXIF orientation applied; errors name the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated/corrupt data fails here, with the path
            img = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err
    return to_rgb_uint8(img)


def to_rgb_uint8(image: Image.Image | np.ndarray | torch.Tensor) -> Image.Image:
    """Convert a decoded image to an RGB uint8 PIL image (the input of the PIL resize).

    Conversions (the official processor only sees 8-bit RGB):
    * PIL modes: plain ``convert("RGB")`` — alpha is dropped (not composited), grayscale is
      replicated, palettes are expanded. 16-bit modes ('I;16*', 'I') are scaled by 1/257 (65535 ->
      255) and rounded; 'F' is read as floats in [0, 1].
    * numpy arrays (H, W) or (H, W, C) with C in {1, 3, 4}, channel-last like PIL: uint8 as is;
      uint16 / 'I' style data by 1/257, rounded; other integer and bool dtypes must hold values in
      [0, 255] (bool: True -> 255); floats must lie in [0, 1] and are multiplied by 255 and rounded.
      A fourth channel is dropped like PIL's alpha.
    * torch tensors (C, H, W) (torch layout) or (H, W): converted to numpy, then as above.
    """
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    if isinstance(image, torch.Tensor):
        return _array_to_rgb(_tensor_to_hwc(image))
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    raise TypeError(
        f"unsupported image type {type(image).__name__}; expected PIL.Image, numpy array, "
        "torch tensor, or a path"
    )


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    _check_size(img.height, img.width)
    if img.mode in _PIL_16BIT_MODES or img.mode == "F":
        return _array_to_rgb(np.asarray(img), source=f"PIL mode {img.mode!r}")
    return img if img.mode == "RGB" else img.convert("RGB")


def _tensor_to_hwc(t: torch.Tensor) -> np.ndarray:
    arr = t.detach().cpu().numpy()
    if arr.ndim == 3:
        if arr.shape[0] not in (1, 3, 4):
            raise ValueError(f"torch image must be (C, H, W) with C in 1/3/4, got shape {tuple(t.shape)}")
        arr = np.moveaxis(arr, 0, -1)
    return arr


def _array_to_rgb(arr: np.ndarray, source: str = "numpy array") -> Image.Image:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(
            f"image array must be (H, W) or (H, W, C) with C in 1/3/4, got shape {arr.shape}"
        )
    _check_size(arr.shape[0], arr.shape[1])
    u8 = _to_uint8(arr, source)
    if u8.ndim == 2:
        u8 = np.repeat(u8[..., None], 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(u8), mode="RGB")


def _to_uint8(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if (arr.dtype.kind == "u" and arr.dtype.itemsize == 2) or source.startswith("PIL mode 'I"):
        return _scale_16bit(arr, source)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError(
                f"{source} of dtype {arr.dtype} must hold values in [0, 255] "
                f"(got [{arr.min()}, {arr.max()}]); pass uint16 for 16-bit data"
            )
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        return _scale_float(arr, source)
    raise ValueError(f"unsupported {source} dtype {arr.dtype}")


def _scale_16bit(arr: np.ndarray, source: str) -> np.ndarray:
    if arr.min() < 0 or arr.max() > 65535:
        raise ValueError(f"16-bit {source} must hold values in [0, 65535], got [{arr.min()}, {arr.max()}]")
    return np.round(arr.astype(np.float64) / 257.0).astype(np.uint8)


def _scale_float(arr: np.ndarray, source: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ValueError(f"float {source} contains NaN or inf")
    tol = 1e-3  # tolerate rounding noise around [0, 1], reject 0..255 float images
    if arr.min() < -tol or arr.max() > 1 + tol:
        raise ValueError(
            f"float {source} must hold values in [0, 1], got [{arr.min():.4g}, {arr.max():.4g}]; "
            "divide 0..255 data by 255 or pass uint8"
        )
    return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- processor


@dataclass
class ProcessedImages:
    """Output of :class:`FGCLIP2ImageProcessor`; lists are indexed like the input images."""

    images: list[torch.Tensor]  # (3, H', W') float32 in [-1, 1]
    original_sizes: list[tuple[int, int]]  # (H, W) after decoding / EXIF transpose
    sizes: list[tuple[int, int]]  # (H', W'), multiples of patch_size
    budgets: list[int]  # token budget used per image
    boxes: list[torch.Tensor] | None = None  # (N, 4) xyxy float32 in resized-image pixels
    patch_size: int = 16

    @property
    def grid_sizes(self) -> list[tuple[int, int]]:
        """Patch grid (h, w) = (H' // p, W' // p) per image."""
        return [(h // self.patch_size, w // self.patch_size) for h, w in self.sizes]

    def __len__(self) -> int:
        return len(self.images)

    def map_boxes_back(self, boxes: Any, index: int) -> torch.Tensor:
        """Map xyxy boxes in resized-image pixels of image ``index`` back to original pixels."""
        t = check_boxes(boxes, index)
        return rescale_boxes(t, self.sizes[index], self.original_sizes[index])


class FGCLIP2ImageProcessor:
    """NaFlex resize + normalise for FG-CLIP 2; maps boxes along.

    Args:
        max_num_patches: fixed token budget for every image, or ``None`` for the official dynamic
            budget (128/256/576/784/1024 from the native size), chosen **per image** so that an
            image's result never depends on the other images of the call (the official processor
            picks one budget from the largest image in the call).
        patch_size: patch side in pixels (16 for all released checkpoints).
    """

    def __init__(self, max_num_patches: int | None = None, patch_size: int = 16):
        for name, value in (("max_num_patches", max_num_patches), ("patch_size", patch_size)):
            if value is None and name == "max_num_patches":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.max_num_patches = None if max_num_patches is None else int(max_num_patches)
        self.patch_size = int(patch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_num_patches={self.max_num_patches}, patch_size={self.patch_size})"

    def budget_for(self, height: int, width: int) -> int:
        """Token budget for an image of native size (height, width)."""
        if self.max_num_patches is not None:
            return self.max_num_patches
        return dynamic_budget(height, width, self.patch_size)

    def __call__(
        self, images: ImageLike | Sequence[ImageLike], boxes: Any | Sequence[Any] | None = None
    ) -> ProcessedImages:
        """Process one image or a list; ``boxes``: one (N, 4) xyxy array per image (original pixels).

        Boxes are not clipped to the image: the model's RoIAlign handles out-of-image parts.
        """
        single = not isinstance(images, (list, tuple))
        image_list = [images] if single else list(images)
        box_list = None
        if boxes is not None:
            box_list = [boxes] if single else list(boxes)
            if len(box_list) != len(image_list):
                raise ValueError(f"got {len(box_list)} box arrays for {len(image_list)} images")

        out = ProcessedImages([], [], [], [], [] if box_list is not None else None, self.patch_size)
        for i, image in enumerate(image_list):
            valid_boxes = None if box_list is None else check_boxes(box_list[i], i)
            pixels, original, size, budget = self._process_one(image, i)
            out.images.append(pixels)
            out.original_sizes.append(original)
            out.sizes.append(size)
            out.budgets.append(budget)
            if valid_boxes is not None:
                out.boxes.append(rescale_boxes(valid_boxes, original, size))
        return out

    def _process_one(self, image: ImageLike, index: int):
        rgb = self._decode(image, index)
        original = (rgb.height, rgb.width)
        budget = self.budget_for(*original)
        size = naflex_size(*original, budget, self.patch_size)
        resized = rgb.resize((size[1], size[0]), resample=Image.BILINEAR)
        return self.normalize(resized), original, size, budget

    @staticmethod
    def _decode(image: ImageLike, index: int) -> Image.Image:
        if isinstance(image, (str, Path)):
            return load_image(image)
        try:
            return to_rgb_uint8(image)
        except (TypeError, ValueError) as err:
            raise type(err)(f"image {index}: {err}") from err

    @staticmethod
    def normalize(rgb: Image.Image) -> torch.Tensor:
        """uint8 RGB PIL image -> (3, H, W) float32, x / 255 then (x - 0.5) / 0.5, in [-1, 1]."""
        # numpy, not torch: torch's per-op threading overhead made this 20x slower on small images
        chw = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1), dtype=np.float32)
        chw *= np.float32(1.0 / 255.0)
        chw -= np.float32(0.5)
        chw /= np.float32(0.5)
        return torch.from_numpy(chw)
