"""FG-CLIP 2 pretraining dataset over FineHARD-layout annotations (EN and ZH roots).

Text rules follow the official data path (FG-CLIP 2's ``fgclip2/train/train.py``,
``LazySupervisedBboxDataset``): captions lower-cased, English
short captions prefixed with "a photo of ", region captions a random pick of the short or long
expression, hard-negative texts = [positive] + negatives. Deliberate differences (configurable):
Chinese samples get region and hard-negative supervision (``cn_regions=True``; the official code
drops it), the hard-negative positive is lower-cased like its negatives, and an unreadable
sample is replaced by another of the same language (counted), so every rank keeps its batch size.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
from mmdet.registry import DATASETS
from PIL import Image
from torch.utils.data import Dataset

from .annotations import Sample, load_samples

logger = logging.getLogger("fgclip2_det")


LANGUAGE_IDS = {"en": 0, "zh": 1}
BAD_SAMPLE_ERRORS = (OSError, ValueError, Image.DecompressionBombError)  # unreadable image, malformed record


def next_same_language(language_ids: np.ndarray, index: int, chunk: int = 4096) -> int:
    """The first index after ``index`` (cyclically) with the same language: the deterministic
    stand-in for a bad sample. Scans in chunks, so a memory-mapped id array is never copied whole."""
    n, lang = len(language_ids), language_ids[index]
    for start in range(index + 1, index + 1 + n, chunk):
        positions = np.arange(start, min(start + chunk, index + 1 + n)) % n
        hits = np.flatnonzero(language_ids[positions] == lang)
        if len(hits):
            return int(positions[hits[0]])
    return index


class PretrainDatasetBase(Dataset):
    """Text rules and bad-sample replacement shared by the JSON and the sharded layouts.

    Subclasses provide ``__len__``, ``language_ids`` (np.uint8, 0 = English, 1 = Chinese),
    ``record(index) -> Sample`` and ``open_image(index) -> PIL.Image``; both may raise one of
    ``BAD_SAMPLE_ERRORS`` for an unreadable image or a malformed record.

    ``on_bad_sample="replace"``: the sample is replaced by the next one of the same language
    (deterministic, so every rank keeps its batch size and a rerun sees the same data), counted in
    the item's ``replaced`` and logged; after ``max_replacements`` bad samples in a row it raises.
    ``"raise"``: the first bad sample raises, naming it.
    """

    def __init__(self, with_regions=True, max_regions=4, num_negatives=10, cn_regions=True,
                 region_caption="random", photo_prefix="a photo of ", lowercase=True, on_bad_sample="replace",
                 max_replacements=64, small_side=128, small_resize=512):
        if region_caption not in ("random", "short", "long"):
            raise ValueError(f"region_caption must be 'random', 'short' or 'long', got {region_caption!r}")
        if on_bad_sample not in ("replace", "raise"):
            raise ValueError(f"on_bad_sample must be 'replace' or 'raise', got {on_bad_sample!r} (skipping a "
                             "sample would shrink one rank's batch, which the distributed losses cannot take)")
        self.with_regions, self.max_regions, self.num_negatives = with_regions, max_regions, num_negatives
        self.cn_regions, self.region_caption = cn_regions, region_caption
        self.photo_prefix, self.lowercase = photo_prefix, lowercase
        self.on_bad_sample, self.max_replacements = on_bad_sample, max_replacements
        self.small_side, self.small_resize = small_side, small_resize

    @property
    def languages(self) -> list[str]:
        """"en" / "zh" per index (readable form of ``language_ids``)."""
        names = {v: k for k, v in LANGUAGE_IDS.items()}
        return [names[int(i)] for i in self.language_ids]

    def describe(self, index: int) -> str:
        """Where sample ``index`` comes from, for messages."""
        return f"sample {index}"

    def _text(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def load_image(self, index: int) -> np.ndarray:
        with self.open_image(index) as im:
            image = im.convert("RGB")
        if min(image.size) < self.small_side:
            image = image.resize((self.small_resize, self.small_resize), Image.BILINEAR)
        return np.asarray(image)

    def __getitem__(self, key) -> dict:
        """A dict of the image (uint8 HxWx3), texts, normalised boxes and ``replaced`` (bad samples
        this item stands in for). ``key``: an index, or ``(index, seed, epoch)`` as
        :class:`GlobalLanguageBatchSampler` yields, which makes the random region-caption pick a
        function of the key, so a resumed run or another worker count draws the same captions."""
        index, draw = (key, None) if isinstance(key, (int, np.integer)) else (key[0], tuple(key[1:]))
        first = index
        for replaced in range(self.max_replacements + 1):
            try:
                rng = random.Random(int(np.random.SeedSequence([index, *draw]).generate_state(1)[0])) \
                    if draw is not None else random
                return self.build_item(self.record(index), self.load_image(index), replaced, rng)
            except BAD_SAMPLE_ERRORS as e:
                if self.on_bad_sample == "raise":
                    raise ValueError(f"bad {self.describe(index)}: {e}") from e
                substitute = next_same_language(self.language_ids, index)
                logger.warning("replacing bad %s by sample %d of the same language: %s",
                               self.describe(index), substitute, e)
                index = substitute
        raise RuntimeError(f"{self.max_replacements + 1} bad samples in a row from {self.describe(first)} on; "
                           "check the data (or raise max_replacements)")

    def build_item(self, sample: Sample, image: np.ndarray, replaced: int = 0, rng=random) -> dict:
        """The official text rules applied to one sample (``rng`` draws the region captions)."""
        short = sample.short_caption if sample.is_cn else self.photo_prefix + sample.short_caption
        item = {"image": image, "long": self._text(sample.long_caption), "short": self._text(short),
                "regions": [], "hard": [], "hard_dropped": 0, "replaced": replaced}
        if not self.with_regions or (sample.is_cn and not self.cn_regions):
            return item
        for region in sample.regions[: self.max_regions]:
            if self.region_caption == "random":
                caption = rng.choice((region.short_expr, region.long_expr))
            else:
                caption = region.short_expr if self.region_caption == "short" else region.long_expr
            item["regions"].append((region.box, self._text(caption)))
            if not region.negatives:
                continue
            if len(region.negatives) < self.num_negatives:
                item["hard_dropped"] += 1
                continue
            texts = [region.short_expr] + region.negatives[: self.num_negatives]
            item["hard"].append((region.box, [self._text(t) for t in texts]))
        return item


@DATASETS.register_module()
class FineHARDDataset(PretrainDatasetBase):
    """Image + long/short caption (+ regions and hard negatives) items for stage 1 / stage 2, from
    FineHARD-layout JSON files. Every annotation is parsed and validated at build time (a malformed
    one raises, naming file and line) and held in memory; for web-scale data use the sharded
    layout (:class:`~fgclip2_det.pretrain.shards.FineHARDShardDataset`).

    Args:
        ann_file / zh_ann_file: English / Chinese annotations (file, .txt list or directory).
        image_root / zh_image_root: folders the items' ``f_path`` are relative to.
        with_regions: False for stage 1 (image-text pairs only).
        max_regions: regions per image (official 4; the first ones are kept).
        num_negatives: hard negatives per region (official 10); regions with fewer take no part in
            the hard-negative losses and are counted.
        region_caption: "random" (official: short or long expression per access), "short" or "long".
        on_bad_sample: "replace" (by the next sample of the same language; counted and logged) or "raise".
        small_side, small_resize: images with a side below ``small_side`` px are squashed to a
            ``small_resize`` square, as the official loader does.
    """

    def __init__(self, ann_file, image_root="", zh_ann_file=None, zh_image_root=None, data_root="", **kwargs):
        super().__init__(**kwargs)
        root = Path(data_root)
        self.samples: list[Sample] = load_samples(root / ann_file, is_cn=False, with_regions=self.with_regions)
        self.roots = [root / image_root] * len(self.samples)
        if zh_ann_file is not None:
            zh = load_samples(root / zh_ann_file, is_cn=True, with_regions=self.with_regions)
            self.samples += zh
            self.roots += [root / (zh_image_root if zh_image_root is not None else image_root)] * len(zh)
        if not self.samples:
            raise ValueError(f"no samples in {ann_file!r} / {zh_ann_file!r}")
        self.language_ids = np.array([LANGUAGE_IDS["zh" if s.is_cn else "en"] for s in self.samples], np.uint8)

    def __len__(self) -> int:
        return len(self.samples)

    def describe(self, index: int) -> str:
        return f"sample {index} (image {self.roots[index] / self.samples[index].image})"

    def record(self, index: int) -> Sample:
        return self.samples[index]

    def open_image(self, index: int) -> Image.Image:
        return Image.open(self.roots[index] / self.samples[index].image)
