"""Tiny random FG-CLIP 2 checkpoints in the official layout, for tests and demos (no downloads)."""
from __future__ import annotations

from pathlib import Path

import torch

from .config import FGCLIP2Config
from .fgclip2 import FGCLIP2


def randomize_(model: FGCLIP2, seed: int = 0) -> FGCLIP2:
    """Draws every parameter at random, O(1)-scaled, so each one changes the outputs (a test that
    drops a bias or a norm then fails) while activations stay in a sane range."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name in ("logit_scale", "logit_bias"):
                p.copy_(torch.tensor([2.3 if name == "logit_scale" else -5.0]))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif p.dim() == 2 and "embedding" not in name:
                p.copy_(noise / p.shape[1] ** 0.5)
            else:  # embeddings, probes
                p.copy_(0.5 * noise)
    return model


def make_tiny_checkpoint(out_dir: str | Path, seed: int = 0, preset: str = "tiny",
                         with_tokenizer: bool = True, model_input_names=None) -> Path:
    """Writes config.json + model.safetensors (+ tokenizer files of a small bilingual tokenizer
    trained on the spot, whose vocabulary size the model then uses). ``model_input_names``: what the
    tokenizer returns, None = transformers' default (ids and attention mask); ``("input_ids",)`` for
    one that returns no attention mask (``train_tiny_tokenizer``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = {}
    if with_tokenizer:
        from .tiny_tokenizer import train_tiny_tokenizer

        overrides["text"] = {"vocab_size": train_tiny_tokenizer(out_dir, model_input_names=model_input_names)}
    torch.manual_seed(seed)
    model = randomize_(FGCLIP2(FGCLIP2Config.preset(preset, **overrides)), seed)
    model.save_pretrained(out_dir)
    return out_dir
