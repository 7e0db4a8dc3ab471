"""Batches for pretraining: NaFlex resize with one token budget per batch, tokenised texts, boxes.

As the official collator (TRN:L417-437), the budget is the dynamic bucket of the *largest*
native image in the batch (capped by ``max_num_patches``); each image is resized to fit it. The
model runs the images packed, so no padding tensors are made.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from mmengine.registry import FUNCTIONS

from ..model.image_processor import FGCLIP2ImageProcessor, dynamic_budget
from ..model.tokenizer import FGCLIP2Tokenizer


@lru_cache(maxsize=4)
def _tokenizer(directory: str) -> FGCLIP2Tokenizer:
    # the dataset already lower-cased what the official code lower-cases
    return FGCLIP2Tokenizer.from_pretrained(directory, lowercase=False)


def batch_budget(images, max_num_patches: int = 1024, patch_size: int = 16) -> int:
    """Dynamic bucket of the largest native image, capped at ``max_num_patches``."""
    return min(max_num_patches, max(dynamic_budget(im.shape[0], im.shape[1], patch_size) for im in images))


def _pixel_boxes(boxes, size) -> torch.Tensor:
    """Normalised xyxy -> pixels of the processed image (x * W', y * H')."""
    h, w = size
    t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return t * torch.tensor([w, h, w, h], dtype=torch.float32)


@FUNCTIONS.register_module()
def naflex_pretrain_collate(batch: list, tokenizer: str, max_num_patches: int = 1024, num_negatives: int = 10,
                            patch_size: int = 16) -> dict:
    """``batch``: dataset items. Returns the model's keyword inputs; ``hard_texts`` is
    (H, 1 + num_negatives, 64), positive first (the dataset's ``num_negatives``)."""
    items = batch
    if not items or any(it is None for it in items):
        raise ValueError(f"a pretraining batch needs one item per sample (got {len(items)} with "
                         f"{sum(it is None for it in items)} None); the dataset replaces bad samples instead")
    tok = _tokenizer(tokenizer)
    budget = batch_budget([it["image"] for it in items], max_num_patches, patch_size)
    processed = FGCLIP2ImageProcessor(budget, patch_size)([it["image"] for it in items])
    hard = [h for it in items for h in it["hard"]]
    wrong = [len(texts) for _, texts in hard if len(texts) != 1 + num_negatives]
    if wrong:
        raise ValueError(f"hard-negative regions must carry 1 + {num_negatives} texts (collate num_negatives "
                         f"must equal the dataset's); got lengths {sorted(set(wrong))}")
    hard_texts = tok([t for _, texts in hard for t in texts], kind="box") if hard else \
        torch.zeros(0, tok.lengths["box"], dtype=torch.long)
    return {
        "images": processed.images,
        "text_long": tok([it["long"] for it in items], kind="long"),
        "text_short": tok([it["short"] for it in items], kind="short"),
        "region_texts": tok([c for it in items for _, c in it["regions"]], kind="box"),
        "region_boxes": [_pixel_boxes([b for b, _ in it["regions"]], size) for it, size in zip(items, processed.sizes)],
        "hard_texts": hard_texts.reshape(len(hard), 1 + num_negatives, tok.lengths["box"]),
        "hard_boxes": [_pixel_boxes([b for b, _ in it["hard"]], size) for it, size in zip(items, processed.sizes)],
        "stats": {"replaced_samples": sum(it.get("replaced", 0) for it in items),
                  "hard_dropped": sum(it["hard_dropped"] for it in items), "token_budget": budget},
    }
