"""Load one tower of an FG-CLIP 2 checkpoint for the MMDetection parts.

A detector needs the vision tower + dense head (backbone) and, separately and often only once, the
text tower (class embeddings). Keeping both in every module would double the memory of the largest
parts (the base text tower alone has a 256000 x 768 token table), so each user loads the checkpoint
and drops the tower it does not use. The result is still an :class:`FGCLIP2` instance, so the
model's own ``vision_features`` / ``pool_regions`` / ``encode_text`` run unchanged.
"""
from __future__ import annotations

from pathlib import Path

from ..model import FGCLIP2

# Submodules / parameters each use keeps; everything else is deleted after loading.
# The vision side keeps the sigmoid's scale and bias: region scores may be calibrated with them.
_VISION_KEEP = ("vision_model", "dense_feature_head", "logit_scale", "logit_bias")
_TEXT_KEEP = ("text_model", "boxtext_head", "longtext_head")


def load_fgclip2_tower(checkpoint: str | Path, tower: str, config_key: str) -> FGCLIP2:
    """``FGCLIP2.from_pretrained(checkpoint)`` with only ``tower`` ("vision" or "text") kept.

    The vision tower also loses its MAP head (``vision_model.head``): detection uses the dense map,
    and an unused trainable head would break DDP's unused-parameter check. ``config_key`` names the
    config entry in error messages (e.g. ``model.backbone.checkpoint``).
    """
    if tower not in ("vision", "text"):
        raise ValueError(f"tower must be 'vision' or 'text', got {tower!r}")
    if checkpoint is None or not Path(checkpoint).is_dir():
        raise FileNotFoundError(
            f"FG-CLIP 2 checkpoint directory not found: {checkpoint!r} (config key {config_key}); "
            "expected a folder with config.json + model.safetensors, e.g. checkpoints/fg-clip2-base "
            "(see checkpoints/README.md), or set it with --cfg-options "
            f"{config_key}=PATH")
    model = FGCLIP2.from_pretrained(checkpoint)
    keep = _VISION_KEEP if tower == "vision" else _TEXT_KEEP
    for name in [n for n, _ in model.named_children()] + [n for n, _ in model.named_parameters(recurse=False)]:
        if name not in keep:
            delattr(model, name)
    if tower == "vision":
        del model.vision_model.head
    model.requires_grad_(False)
    return model.eval()

