"""FineHARD-layout annotations (as the official ``LazySupervisedBboxDataset`` reads them,
TRN:L168-406): reading, validation with file/line errors, normalisation.

Accepted inputs, as the official loader: a ``.json`` file holding a list, a ``.jsonl`` file with one
item per line, a ``.txt`` listing such files, or a directory of them. Every problem is reported with
the file and the line (JSONL) or item index (JSON) at dataset build, before training starts.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and the line or item."""


@dataclass
class Region:
    box: tuple[float, float, float, float]  # normalised xyxy in [0, 1]
    short_expr: str
    long_expr: str
    negatives: list[str] = field(default_factory=list)  # empty when flag_short_neg is not 1


@dataclass
class Sample:
    image: str  # path relative to the language's image root
    long_caption: str
    short_caption: str
    is_cn: bool
    regions: list[Region]


def annotation_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise FileNotFoundError(f"{path}: no .json/.jsonl annotation files")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    if path.suffix == ".txt":
        return [Path(line.strip()) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [path]


def read_items(path: Path) -> list[tuple[str, dict]]:
    """[(where, item)] with ``where`` = "file:line N" (JSONL) or "file item N" (JSON list)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append((f"{path}:line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise AnnotationError(f"{path}:line {n}: not valid JSON ({e.msg})") from e
        return out
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}:line {e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: expected a JSON list of items, got {type(items).__name__}")
    return [(f"{path} item {i}", item) for i, item in enumerate(items)]


def _text(item: dict, key: str, where: str, required: bool = True) -> str:
    value = item.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def parse_region(region: dict, where: str) -> Region:
    box = region.get("bbox")
    if not isinstance(box, (list, tuple)) or len(box) < 4:
        raise AnnotationError(f"{where}: 'bbox' must be [x1, y1, x2, y2(, score)], got {box!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in box[:4])
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: 'bbox' has a non-number: {box!r}") from e
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise AnnotationError(f"{where}: 'bbox' is not finite: {box!r}")
    if not (-1e-6 <= x1 <= x2 <= 1 + 1e-6 and -1e-6 <= y1 <= y2 <= 1 + 1e-6):
        raise AnnotationError(f"{where}: 'bbox' must be normalised xyxy with 0 <= x1 <= x2 <= 1 and "
                              f"0 <= y1 <= y2 <= 1, got {box!r}")
    negatives = []
    if region.get("flag_short_neg") == 1:
        negs = region.get("short_expr_negs")
        if not isinstance(negs, dict) or not all(isinstance(v, str) for v in negs.values()):
            raise AnnotationError(f"{where}: flag_short_neg is 1 but 'short_expr_negs' is not a dict of "
                                  f"strings: {negs!r}")
        negatives = list(negs.values())
    return Region((x1, y1, x2, y2), _text(region, "short_expr", where), _text(region, "long_expr", where),
                  negatives)


def parse_item(item: dict, where: str, is_cn: bool, with_regions: bool) -> Sample:
    if not isinstance(item, dict):
        raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
    regions = []
    if with_regions:
        infos = item.get("bbox_info", [])
        if not isinstance(infos, list):
            raise AnnotationError(f"{where}: 'bbox_info' must be a list")
        regions = [parse_region(r, f"{where} region {k}") for k, r in enumerate(infos)]
    return Sample(image=_text(item, "f_path", where), long_caption=_text(item, "caption", where),
                  short_caption=_text(item, "short_caption", where, required=False) or _text(item, "caption", where),
                  is_cn=is_cn or "is_cn" in item, regions=regions)


def load_samples(path: str | Path, is_cn: bool = False, with_regions: bool = True) -> list[Sample]:
    """Every sample of ``path`` (file, list file or directory), validated."""
    return [parse_item(item, where, is_cn, with_regions)
            for f in annotation_files(path) for where, item in read_items(f)]
