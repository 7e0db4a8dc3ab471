"""Reads a generated synthetic world: file paths and class metadata for configs, tools and tests."""
from __future__ import annotations

import json
from pathlib import Path


class SyntheticWorld:
    """``SyntheticWorld(root)`` for a folder written by ``tools/make_synthetic_world.py``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta_path = self.root / "world.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: generate the world first with "
                                    f"`python tools/make_synthetic_world.py {self.root} --images N --seed S`")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))

    def path(self, key: str) -> Path:
        files = self.meta["files"]
        if key not in files:
            raise KeyError(f"no file {key!r} in {self.root / 'world.json'}; known: {sorted(files)}")
        return self.root / files[key]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta["classes"])

    @property
    def classes_zh(self) -> tuple[str, ...]:
        return tuple(self.meta["classes_zh"])

    @property
    def base_classes(self) -> tuple[str, ...]:
        return tuple(self.meta["base_classes"])

    @property
    def novel_classes(self) -> tuple[str, ...]:
        return tuple(self.meta["novel_classes"])

    def det_metainfo(self) -> dict:
        """``metainfo`` for MMDetection datasets (OV style: base and novel classes named)."""
        return {"classes": self.classes, "base_classes": self.base_classes,
                "novel_classes": self.novel_classes, "classes_zh": self.classes_zh}
