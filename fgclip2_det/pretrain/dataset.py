"""FG-CLIP 2 pretraining dataset over FineHARD-layout annotations (EN and ZH roots).

Text rules follow the official data path (spec §2.2, §2.4, §4.1): captions lower-cased, English
short captions prefixed with "a photo of ", region captions a random pick of the short or long
expression, hard-negative texts = [positive] + negatives. Deliberate differences (configurable):
Chinese samples get region and hard-negative supervision (``cn_regions=True``; the official code
drops it), and the hard-negative positive is lower-cased like its negatives.
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


@DATASETS.register_module()
class FineHARDDataset(Dataset):
    """Image + long/short caption (+ regions and hard negatives) items for stage 1 / stage 2.

    Args:
        ann_file / zh_ann_file: English / Chinese annotations (file, .txt list or directory).
        image_root / zh_image_root: folders the items' ``f_path`` are relative to.
        with_regions: False for stage 1 (image-text pairs only).
        max_regions: regions per image (official 4; the first ones are kept).
        num_negatives: hard negatives per region (official 10); regions with fewer take no part in
            the hard-negative losses and are counted.
        region_caption: "random" (official: short or long expression per access), "short" or "long".
        on_bad_image: "skip" (counted, logged, the batch goes on) or "raise".
        small_side, small_resize: images with a side below ``small_side`` px are squashed to a
            ``small_resize`` square, as the official loader does.
    """

    def __init__(self, ann_file, image_root="", zh_ann_file=None, zh_image_root=None, data_root="",
                 with_regions=True, max_regions=4, num_negatives=10, cn_regions=True,
                 region_caption="random", photo_prefix="a photo of ", lowercase=True, on_bad_image="skip",
                 small_side=128, small_resize=512):
        if region_caption not in ("random", "short", "long"):
            raise ValueError(f"region_caption must be 'random', 'short' or 'long', got {region_caption!r}")
        if on_bad_image not in ("skip", "raise"):
            raise ValueError(f"on_bad_image must be 'skip' or 'raise', got {on_bad_image!r}")
        root = Path(data_root)
        self.samples: list[Sample] = load_samples(root / ann_file, is_cn=False, with_regions=with_regions)
        self.roots = [root / image_root] * len(self.samples)
        if zh_ann_file is not None:
            zh = load_samples(root / zh_ann_file, is_cn=True, with_regions=with_regions)
            self.samples += zh
            self.roots += [root / (zh_image_root if zh_image_root is not None else image_root)] * len(zh)
        if not self.samples:
            raise ValueError(f"no samples in {ann_file!r} / {zh_ann_file!r}")
        self.with_regions, self.max_regions, self.num_negatives = with_regions, max_regions, num_negatives
        self.cn_regions, self.region_caption = cn_regions, region_caption
        self.photo_prefix, self.lowercase, self.on_bad_image = photo_prefix, lowercase, on_bad_image
        self.small_side, self.small_resize = small_side, small_resize

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def languages(self) -> list[str]:
        """"en" / "zh" per index, for language-homogeneous batches."""
        return ["zh" if s.is_cn else "en" for s in self.samples]

    def _text(self, text: str) -> str:
        return text.lower() if self.lowercase else text

    def load_image(self, index: int) -> np.ndarray | None:
        path = self.roots[index] / self.samples[index].image
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError) as e:
            if self.on_bad_image == "raise":
                raise ValueError(f"cannot read image {path} (sample {index}): {e}") from e
            logger.warning("skipping sample %d: cannot read image %s (%s)", index, path, e)
            return None
        if min(image.size) < self.small_side:
            image = image.resize((self.small_resize, self.small_resize), Image.BILINEAR)
        return np.asarray(image)

    def __getitem__(self, index: int) -> dict | None:
        """A dict of the image (uint8 HxWx3), texts and normalised boxes; None for a skipped image."""
        sample = self.samples[index]
        image = self.load_image(index)
        if image is None:
            return None
        short = sample.short_caption if sample.is_cn else self.photo_prefix + sample.short_caption
        item = {"image": image, "long": self._text(sample.long_caption), "short": self._text(short),
                "regions": [], "hard": [], "hard_dropped": 0}
        if not self.with_regions or (sample.is_cn and not self.cn_regions):
            return item
        for region in sample.regions[: self.max_regions]:
            if self.region_caption == "random":
                caption = random.choice((region.short_expr, region.long_expr))
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
