"""On-disk cache of class-name embeddings, keyed by everything that determines them.

Key = SHA-256 of: cache format version, the checkpoint fingerprint, the tokenizer files' bytes, the
text kind, and the exact texts per class (names after templating and casing). Any change of weights,
tokenizer, names, templates, casing or kind gives a new key; stale entries are simply never read.

Checkpoint fingerprint, two modes:

* ``"fast"`` (default): per weight file (``model.safetensors``, or the index + every shard) its
  name, size, ``mtime_ns`` and a SHA-256 of its first and last MiB, plus ``config.json``'s bytes.
  Rewriting weights changes the mtime (and almost always the hashed bytes, the first MiB holds the
  safetensors header); it costs milliseconds even for so400m. Blind spot: a file edited in the
  middle whose mtime is then restored by hand (``touch -r``, some sync tools) keeps its key.
  Copying a checkpoint changes the mtime, so the copy recomputes once.
* ``"full"``: SHA-256 of every byte of every weight file (seconds to minutes for large models).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from ..model.checkpoint import weight_files
from ..model.tokenizer import TOKENIZER_FILES

logger = logging.getLogger("fgclip2_det")

CACHE_FORMAT = 1  # bump when the embedding computation itself changes
_MIB = 1 << 20


def default_cache_dir() -> Path:
    """``$FGCLIP2_DET_CACHE/text`` if set, else ``~/.cache/fgclip2_det/text``."""
    root = os.environ.get("FGCLIP2_DET_CACHE")
    return Path(root) / "text" if root else Path.home() / ".cache" / "fgclip2_det" / "text"


def _sha256_file(path: Path, head_tail_only: bool) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if head_tail_only:
            size = path.stat().st_size
            digest.update(f.read(_MIB))
            if size > _MIB:
                f.seek(max(_MIB, size - _MIB))
                digest.update(f.read(_MIB))
        else:
            for block in iter(lambda: f.read(16 * _MIB), b""):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_fingerprint(checkpoint: str | Path, mode: str = "fast") -> dict[str, Any]:
    """Identity of a checkpoint's weights (module doc for the two modes)."""
    if mode not in ("fast", "full"):
        raise ValueError(f"fingerprint mode must be 'fast' or 'full', got {mode!r}")
    directory = Path(checkpoint)
    files = {}
    for path in weight_files(directory):
        stat = path.stat()
        entry = {"size": stat.st_size, "sha256": _sha256_file(path, head_tail_only=mode == "fast")}
        if mode == "fast":
            entry["mtime_ns"] = stat.st_mtime_ns
        files[path.name] = entry
    config = directory / "config.json"
    files["config.json"] = {"sha256": _sha256_file(config, False) if config.is_file() else None}
    return {"mode": mode, "files": files}


def tokenizer_fingerprint(checkpoint: str | Path) -> dict[str, str]:
    """SHA-256 of each tokenizer file present (they are small)."""
    directory = Path(checkpoint)
    return {name: _sha256_file(directory / name, False) for name in TOKENIZER_FILES
            if (directory / name).is_file()}


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """``<dir>/<key>.pt`` files holding one float32 tensor each; atomic writes."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def load(self, key: str) -> torch.Tensor | None:
        """The cached tensor, or None when absent. An unreadable file is reported and ignored
        (it is then recomputed and overwritten)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            return entry["embeddings"]
        except (OSError, RuntimeError, KeyError, TypeError, EOFError, pickle.UnpicklingError) as err:
            logger.warning("text embedding cache %s is unreadable (%s); recomputing", path, err)
            return None

    def save(self, key: str, embeddings: torch.Tensor, meta: dict[str, Any]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save({"embeddings": embeddings.detach().cpu().contiguous(), "meta": meta}, tmp)
        os.replace(tmp, path)
        return path
