"""Indexed WebDataset-style tar shards for web-scale pretraining data.

:class:`~fgclip2_det.pretrain.dataset.FineHARDDataset` parses every annotation into memory, and each
dataloader worker ends up with its own copy of those Python objects (reference counting writes to
every page it touches). At the paper's scale (hundreds of millions of pairs) that does not fit.
Here the data live on disk in a layout any WebDataset tool can stream, plus a fixed-width index
that makes it random-access, so the map-style sampler (``GlobalLanguageBatchSampler``) works
unchanged and a worker's memory does not grow with the dataset::

    OUT/shards/en-000000.tar ...   one language per shard, uncompressed (so members can be read by
    OUT/shards/zh-000000.tar ...   seeking); sample = {key}.json (the FineHARD item, f_path kept for
                                   provenance, is_cn on Chinese items) + {key}.{jpg|png|...} (the
                                   original image bytes and extension); key = row number, 9 digits
    OUT/index.npy                  int64 (N, 5): shard id, json offset, json size, image offset, image size
    OUT/language_ids.npy           uint8 (N,): 0 = English, 1 = Chinese
    OUT/index.json                 format version, shard names and byte sizes, per-language counts, sources

Both .npy files are memory-mapped read-only, so workers share their pages. Written by
``python tools/make_pretrain_shards.py`` (:func:`write_shards`).
"""
from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
from array import array
from pathlib import Path

import numpy as np
from mmdet.registry import DATASETS
from PIL import Image
from tqdm import tqdm

from .annotations import AnnotationError, Sample, annotation_files, parse_item, read_items
from .dataset import LANGUAGE_IDS, PretrainDatasetBase

logger = logging.getLogger("fgclip2_det")

FORMAT = "fgclip2-finehard-shards"
VERSION = 1
INDEX_NPY, LANGUAGE_NPY, INDEX_JSON, SHARD_DIR = "index.npy", "language_ids.npy", "index.json", "shards"
INDEX_COLUMNS = ("shard", "json_offset", "json_size", "image_offset", "image_size")
WRITER_TOOL = "python tools/make_pretrain_shards.py"
_BLOCK = tarfile.BLOCKSIZE
_MAX_LISTED_SKIPS = 1000


def sample_key(row: int) -> str:
    """WebDataset key of index row ``row`` (no dots: WebDataset splits a member name at the first one)."""
    return f"{row:09d}"


class _ShardWriter:
    """Appends samples of one language to ``{lang}-NNNNNN.tar`` files, ``samples_per_shard`` each,
    and returns where each member's bytes landed (the index row)."""

    def __init__(self, shard_dir: Path, lang: str, samples_per_shard: int, names: list[str], sizes: list[int]):
        self.shard_dir, self.lang, self.samples_per_shard = shard_dir, lang, samples_per_shard
        self.names, self.sizes = names, sizes  # shared across languages: shard id = position in names
        self.tar: tarfile.TarFile | None = None
        self.shard_id, self.count, self.next_number = -1, 0, 0

    def _roll(self) -> None:
        self.close()
        name = f"{self.lang}-{self.next_number:06d}.tar"
        self.next_number += 1
        # ustar: member names are short ASCII (key + extension), and its headers cost half PAX's to build
        self.tar = tarfile.open(self.shard_dir / name, "w", format=tarfile.USTAR_FORMAT)
        self.shard_id, self.count = len(self.names), 0
        self.names.append(name)
        self.sizes.append(0)

    def _add(self, name: str, data: bytes) -> int:
        """Adds one member; returns the offset of its data. (``TarFile.addfile`` does not set
        ``offset_data`` on what it writes, so it is derived from the archive offset: the data are
        the last ``size`` bytes before the padding to 512.)"""
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644  # mtime 0: same input -> same bytes
        self.tar.addfile(info, io.BytesIO(data))
        return self.tar.offset - -(-len(data) // _BLOCK) * _BLOCK

    def add(self, key: str, item_bytes: bytes, image_bytes: bytes, image_ext: str) -> tuple[int, ...]:
        if self.tar is None or self.count >= self.samples_per_shard:
            self._roll()
        json_offset = self._add(f"{key}.json", item_bytes)
        image_offset = self._add(f"{key}.{image_ext}", image_bytes)
        self.count += 1
        return self.shard_id, json_offset, len(item_bytes), image_offset, len(image_bytes)

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.sizes[self.shard_id] = (self.shard_dir / self.names[self.shard_id]).stat().st_size
            self.tar = None


def _image_ext(path: str) -> str:
    ext = Path(path).suffix.lstrip(".").lower()
    return ext if ext and ext.isascii() and ext.isalnum() else "img"


def write_shards(ann_file, image_root, out_dir, zh_ann_file=None, zh_image_root=None, data_root="",
                 samples_per_shard: int = 10000, with_regions: bool = True, overwrite: bool = False) -> dict:
    """Converts FineHARD-layout annotations (+ their images) to the sharded layout (module docstring).

    Paths resolve like :class:`FineHARDDataset`'s (``data_root`` / ``ann_file`` etc.), and samples
    keep its order (English files, then Chinese), so index i is the same sample in both. Every item
    is validated with ``parse_item`` (``with_regions=False``: captions only): a malformed one raises
    :class:`AnnotationError` naming file and line/item, as conversion is offline. An image that is
    missing, empty or unreadable is skipped, logged, counted and listed in the summary (and in
    ``OUT/skipped.tsv``). Returns the summary dict.
    """
    if samples_per_shard <= 0:
        raise ValueError(f"samples_per_shard must be positive, got {samples_per_shard}")
    root, out = Path(data_root), Path(out_dir)
    shard_dir = out / SHARD_DIR
    if shard_dir.is_dir() and any(shard_dir.glob("*.tar")):
        if not overwrite:
            raise FileExistsError(f"{shard_dir} already holds shards; remove it or pass overwrite=True (--overwrite)")
        for stale in [*shard_dir.glob("*.tar"), *(out / n for n in (INDEX_JSON, INDEX_NPY, LANGUAGE_NPY))]:
            stale.unlink(missing_ok=True)
    shard_dir.mkdir(parents=True, exist_ok=True)

    sources = [("en", root / ann_file, root / image_root)]
    if zh_ann_file is not None:
        sources.append(("zh", root / zh_ann_file, root / (zh_image_root if zh_image_root is not None else image_root)))
    names: list[str] = []
    sizes: list[int] = []
    writers = {lang: _ShardWriter(shard_dir, lang, samples_per_shard, names, sizes) for lang in LANGUAGE_IDS}
    index, language_ids = array("q"), array("B")  # 41 bytes a sample while writing
    counts = {lang: 0 for lang in LANGUAGE_IDS}
    skipped, skipped_listed, files_read = 0, [], {}
    start = time.perf_counter()
    skip_log = None
    try:
        for lang, ann_path, images in sources:
            files_read[lang] = [str(f) for f in annotation_files(ann_path)]
            for f in files_read[lang]:
                items = read_items(Path(f))
                for where, item in tqdm(items, desc=f"{lang} {Path(f).name}", unit="sample", leave=False,
                                        mininterval=1.0):
                    sample: Sample = parse_item(item, where, is_cn=lang == "zh", with_regions=with_regions)
                    image_path = images / sample.image
                    try:
                        image_bytes = image_path.read_bytes()
                        if not image_bytes:
                            raise OSError("empty file")
                    except OSError as e:
                        reason = e.strerror or str(e)
                        skipped += 1
                        if len(skipped_listed) < _MAX_LISTED_SKIPS:
                            skipped_listed.append({"where": where, "image": str(image_path), "error": reason})
                        if skip_log is None:
                            skip_log = open(out / "skipped.tsv", "w", encoding="utf-8")
                        skip_log.write(f"{where}\t{image_path}\t{reason}\n")
                        logger.warning("%s: skipping, image %s not readable: %s", where, image_path, reason)
                        continue
                    sample_lang = "zh" if sample.is_cn else "en"
                    if sample.is_cn and "is_cn" not in item:
                        item = {**item, "is_cn": True}
                    row = len(language_ids)
                    item_bytes = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
                    index.extend(writers[sample_lang].add(sample_key(row), item_bytes, image_bytes,
                                                          _image_ext(sample.image)))
                    language_ids.append(LANGUAGE_IDS[sample_lang])
                    counts[sample_lang] += 1
                del items
    finally:
        for w in writers.values():
            w.close()
        if skip_log is not None:
            skip_log.close()
    if not language_ids:
        raise ValueError(f"no samples written from {ann_file!r} / {zh_ann_file!r} ({skipped} skipped for unreadable "
                         "images)")
    # index files last, each via a temporary name: a crashed conversion leaves no loadable index
    arrays = {INDEX_NPY: np.frombuffer(index, np.int64).reshape(-1, len(INDEX_COLUMNS)),
              LANGUAGE_NPY: np.frombuffer(language_ids, np.uint8)}
    for name, arr in arrays.items():
        with open(out / f"{name}.tmp", "wb") as fh:
            np.save(fh, arr)
        os.replace(out / f"{name}.tmp", out / name)
    meta = {"format": FORMAT, "version": VERSION, "samples": len(language_ids), "counts": counts,
            "columns": list(INDEX_COLUMNS), "key": "index row, 9 digits", "shards": names, "shard_bytes": sizes,
            "samples_per_shard": samples_per_shard, "validated_regions": with_regions, "sources": files_read,
            "image_roots": {lang: str(images) for lang, _, images in sources}, "skipped": skipped}
    (out / f"{INDEX_JSON}.tmp").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(out / f"{INDEX_JSON}.tmp", out / INDEX_JSON)
    summary = {"out_dir": str(out), "samples": len(language_ids), "counts": counts, "shards": len(names),
               "shard_bytes": sum(sizes), "skipped": skipped, "skipped_images": skipped_listed,
               "seconds": time.perf_counter() - start}
    logger.info("wrote %d samples (%s) in %d shards to %s; %d skipped for unreadable images", len(language_ids),
                counts, len(names), out, skipped)
    return summary


@DATASETS.register_module()
class FineHARDShardDataset(PretrainDatasetBase):
    """:class:`FineHARDDataset`'s items, read from the sharded layout (module docstring) by seeking.

    The index arrays are memory-mapped (shared between workers, never copied into the process) and
    shard files are opened lazily in the process that reads them, at most ``max_open_files`` at a
    time, and re-opened after a fork: the object that is pickled to dataloader workers holds only
    paths and settings, whatever the dataset size. A record that does not parse or an image that
    does not decode is a bad sample (replaced or raised, see :class:`PretrainDatasetBase`), named by
    shard and key.

    Args:
        shard_root: the folder :func:`write_shards` wrote (joined to ``data_root``).
        max_open_files: shard files kept open per process (least recently used closed first).
        **kwargs: :class:`PretrainDatasetBase` settings (``with_regions``, ``max_regions``, ...).
    """

    def __init__(self, shard_root, data_root="", max_open_files: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(data_root) / shard_root
        self.max_open_files = max(1, int(max_open_files))
        missing = [n for n in (INDEX_JSON, INDEX_NPY, LANGUAGE_NPY) if not (self.root / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.root}: no {', '.join(missing)}; it is not a shard folder. Write one with "
                                    f"`{WRITER_TOOL} {self.root} --ann-file ... --image-root ...` "
                                    "(fgclip2_det.pretrain.shards.write_shards)")
        meta = self._read_meta()
        if self.with_regions and not meta.get("validated_regions", True):
            logger.warning("%s was written without validating regions (--no-regions); malformed regions will be "
                           "replaced as bad samples", self.root)
        self._check_shards(meta.get("shard_bytes"))
        self._files: dict[int, object] = {}
        self._pid = None
        self._open_index()
        columns = len(INDEX_COLUMNS)
        if self.index.ndim != 2 or self.index.shape[1] != columns or len(self.index) != len(self.language_ids):
            raise ValueError(f"{self.root}: {INDEX_NPY} has shape {self.index.shape} and {LANGUAGE_NPY} "
                             f"{self.language_ids.shape}; expected (N, {columns}) and (N,). Rewrite with "
                             f"{WRITER_TOOL}")
        if len(self.index) != meta.get("samples", len(self.index)):
            raise ValueError(f"{self.root}: {INDEX_NPY} has {len(self.index)} rows, {INDEX_JSON} says "
                             f"{meta['samples']} samples (files from different conversions?)")
        if not len(self.index):
            raise ValueError(f"{self.root}: no samples")

    def _read_meta(self) -> dict:
        meta = json.loads((self.root / INDEX_JSON).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{self.root / INDEX_JSON}: format {meta.get('format')!r} version "
                             f"{meta.get('version')!r}, this reader needs {FORMAT!r} version {VERSION}; rewrite it "
                             f"with {WRITER_TOOL}")
        self.shards: list[str] = list(meta["shards"])
        return meta

    def _check_shards(self, expected_sizes) -> None:
        """Every shard the index names exists with the size it was written with (one stat per
        shard), so a partial copy or a mixed-up folder fails at build, not hours into training."""
        shard_dir = self.root / SHARD_DIR
        missing = [n for n in self.shards if not (shard_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{shard_dir}: {len(missing)} of the {len(self.shards)} shards listed in "
                                    f"{self.root / INDEX_JSON} are missing ({', '.join(missing[:5])}"
                                    f"{', ...' if len(missing) > 5 else ''}); the index and the shards do not match")
        for name, size in zip(self.shards, expected_sizes or []):
            actual = (shard_dir / name).stat().st_size
            if actual != size:
                raise ValueError(f"{shard_dir / name}: {actual} bytes, {INDEX_JSON} says {size}; the index and the "
                                 "shards do not match (partial copy, or shards from another conversion?)")

    def _open_index(self) -> None:
        self.index = np.load(self.root / INDEX_NPY, mmap_mode="r")
        self.language_ids = np.load(self.root / LANGUAGE_NPY, mmap_mode="r")

    # Pickled to workers: paths and settings only, the same size for any dataset (a memmap would
    # pickle its whole contents; the shard names grow with the data, so they are re-read).
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("index", "language_ids", "shards", "_files", "_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._files, self._pid = {}, None
        self._read_meta()
        self._open_index()

    def __len__(self) -> int:
        return len(self.index)

    def _row(self, index: int) -> tuple[int, int, int, int, int]:
        shard, *rest = (int(v) for v in self.index[index])
        if not 0 <= shard < len(self.shards):
            raise RuntimeError(f"{self.root / INDEX_NPY}: row {index} names shard {shard}, but {INDEX_JSON} lists "
                               f"{len(self.shards)}; the index is corrupt, rewrite it with {WRITER_TOOL}")
        return (shard, *rest)

    def _where(self, index: int, shard: int) -> str:
        return f"{self.root / SHARD_DIR / self.shards[shard]}:{sample_key(index)}"

    def describe(self, index: int) -> str:
        return f"sample {index} ({self._where(index, self._row(index)[0])})"

    def _file(self, shard: int):
        """The open shard file, per process: handles inherited through a fork are dropped (the
        child opens its own), and the least recently used is closed beyond ``max_open_files``."""
        if self._pid != os.getpid():
            self._files, self._pid = {}, os.getpid()
        f = self._files.pop(shard, None)
        if f is None:
            while len(self._files) >= self.max_open_files:
                self._files.pop(next(iter(self._files))).close()
            f = open(self.root / SHARD_DIR / self.shards[shard], "rb", buffering=0)
        self._files[shard] = f  # re-inserted last: most recently used
        return f

    def _read(self, index: int, shard: int, offset: int, size: int, what: str) -> bytes:
        f = self._file(shard)
        if hasattr(os, "pread"):  # no shared file position: safe with threads
            data = os.pread(f.fileno(), size, offset)
        else:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise ValueError(f"{self._where(index, shard)}: {what} truncated, {len(data)} of {size} bytes at "
                             f"offset {offset}")
        return data

    def record(self, index: int) -> Sample:
        shard, json_offset, json_size, _, _ = self._row(index)
        where = self._where(index, shard)
        data = self._read(index, shard, json_offset, json_size, "json record")
        try:
            item = json.loads(data)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise AnnotationError(f"{where}: not valid JSON ({e})") from e
        return parse_item(item, where, is_cn=int(self.language_ids[index]) == LANGUAGE_IDS["zh"],
                          with_regions=self.with_regions)

    def open_image(self, index: int) -> Image.Image:
        shard, _, _, image_offset, image_size = self._row(index)
        return Image.open(io.BytesIO(self._read(index, shard, image_offset, image_size, "image")))
