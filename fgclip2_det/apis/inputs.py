"""What a person gives the inference API, checked in one place: typed vocabularies, typed boxes,
image files and folders, checkpoint folders.

Every problem with such input raises :class:`InputError`, whose message is meant to be shown as is
(a command line prints it as one line, the web demo puts it on the page) and names the bad file, line
or box.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ..model.image_processor import load_image, to_rgb_uint8
from ..openvocab import Vocabulary, normalize_vocabulary

MAX_CLASSES = 300  # typed vocabularies; a list (LVIS' 1203 names) has no limit
MAX_BOXES = 100
# The suffixes MMDetection's DetInferencer lists in a folder (mmdet.apis.det_inferencer.IMG_EXTENSIONS).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class InputError(ValueError):
    """A problem with what the user gave, worded for them (one line, names the file / line / box)."""


# ------------------------------------------------------------------------------------- vocabulary
def parse_vocabulary(text: str | None, what: str = "The vocabulary", max_classes: int | None = MAX_CLASSES
                     ) -> list[str | list[str]]:
    """A typed vocabulary -> a list of classes.

    Classes are separated by commas (also '，'), semicolons (also '；') or new lines; ``|`` (also '｜')
    separates the synonyms of one class, e.g. ``"dog | 狗, cat | 猫, red car"`` gives
    ``[["dog", "狗"], ["cat", "猫"], "red car"]``. A name already given (case-insensitive) is dropped.
    ``what`` names the input in messages (e.g. ``"--vocab"``)."""
    classes, seen = [], set()
    for entry in re.split(r"[,，;；\n]", text or ""):
        names = []
        for name in re.split(r"[|｜]", entry):
            name = name.strip()
            if name and name.lower() not in seen:
                names.append(name)
                seen.add(name.lower())
        if names:
            classes.append(names[0] if len(names) == 1 else names)
    if not classes:
        raise InputError(f'{what} is empty: type class names separated by commas, e.g. "dog, 猫, red car" '
                         '(synonyms of one class joined by |, e.g. "dog | 狗").')
    if max_classes is not None and len(classes) > max_classes:
        raise InputError(f"{what} has {len(classes)} names; the limit is {max_classes}.")
    return classes


def as_vocabulary(vocabulary: str | Vocabulary) -> list[str | list[str]]:
    """Typed text (:func:`parse_vocabulary`) or a list of names / synonym lists, checked."""
    if isinstance(vocabulary, str):
        return parse_vocabulary(vocabulary)
    try:
        return [names[0] if len(names) == 1 else list(names) for names in normalize_vocabulary(vocabulary)]
    except ValueError as err:
        raise InputError(f"vocabulary: {err}") from err


# ------------------------------------------------------------------------------------- boxes
def parse_boxes(text: str | None, width: int, height: int) -> np.ndarray:
    """(N, 4) float boxes from lines of ``x1, y1, x2, y2`` (pixels; a JSON list of lists works too),
    clipped to the image; a malformed line or a box without area names its line."""
    rows = re.findall(r"[^\n\]]*\d[^\n\[\]]*", (text or "").replace("],", "]\n"))
    boxes = []
    for i, row in enumerate(r for r in rows if r.strip(" ,[]")):
        values = [v for v in re.split(r"[\s,\[\]]+", row.strip()) if v]
        try:
            box = [float(v) for v in values]
        except ValueError:
            box = []
        if len(box) != 4 or not all(np.isfinite(box)):
            raise InputError(f"Box {i + 1} ({row.strip()!r}): expected 4 numbers x1, y1, x2, y2 in pixels.")
        x1, y1, x2, y2 = min(max(box[0], 0), width), min(max(box[1], 0), height), \
            min(max(box[2], 0), width), min(max(box[3], 0), height)
        if x2 <= x1 or y2 <= y1:
            raise InputError(f"Box {i + 1} ({row.strip()!r}) has no area inside the {width}×{height} image "
                             "(x2 must exceed x1 and y2 exceed y1).")
        boxes.append([x1, y1, x2, y2])
    if not boxes:
        raise InputError("Give at least one box, one per line: x1, y1, x2, y2 (pixels).")
    if len(boxes) > MAX_BOXES:
        raise InputError(f"{len(boxes)} boxes; the limit is {MAX_BOXES}.")
    return np.asarray(boxes, dtype=np.float32)


# ------------------------------------------------------------------------------------- images
def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) RGB uint8 array of an image file, EXIF orientation applied (as
    :func:`~fgclip2_det.model.image_processor.load_image`); errors name the file."""
    try:
        return np.asarray(load_image(path))
    except (FileNotFoundError, ValueError) as err:  # "image file not found: ...", "cannot read image ...: ..."
        raise InputError(str(err)) from err
    except Image.DecompressionBombError as err:
        raise InputError(f"cannot read image {path}: {err}") from err


def as_rgb_array(image: np.ndarray, where: str = "image") -> np.ndarray:
    """An in-memory image (H, W[, C]) as (H, W, 3) RGB uint8 (``to_rgb_uint8``'s rules)."""
    try:
        return np.asarray(to_rgb_uint8(image))
    except (TypeError, ValueError) as err:
        raise InputError(f"{where}: {err}") from err


def list_images(source: str | Path | np.ndarray | Sequence[str | Path | np.ndarray]) -> list[str | Path | np.ndarray]:
    """The images of ``source``: a file, a folder (its files with an image suffix, sorted, not
    recursive), an array, or a list of files and arrays. A folder without images is an error."""
    if isinstance(source, np.ndarray) or not isinstance(source, (str, Path)):
        items = [source] if isinstance(source, np.ndarray) else list(source)
        return [Path(i) if isinstance(i, str) else i for i in items]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InputError(f"folder {path} holds no image (suffixes {', '.join(IMAGE_EXTENSIONS)})")
        return files
    if not path.exists():
        raise InputError(f"image file not found: {path}")
    return [path]


# ------------------------------------------------------------------------------------- checkpoints
def check_checkpoint(path: str | Path) -> Path:
    """An FG-CLIP 2 checkpoint folder (it has a config.json), else an error saying what is expected."""
    directory = Path(path)
    if not (directory / "config.json").is_file():
        what = "has no config.json" if directory.is_dir() else "not found"
        raise InputError(f"checkpoint directory {path} {what}: expected an FG-CLIP 2 folder with config.json "
                         "+ model.safetensors + tokenizer files, e.g. checkpoints/fg-clip2-base "
                         "(see checkpoints/README.md)")
    return directory
