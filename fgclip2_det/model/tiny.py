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


INITS = ("test", "scratch")


def siglip_init_(model: FGCLIP2) -> FGCLIP2:
    """SigLIP's from-scratch initialisation (the ``_init_weights`` of Hugging Face's SigLIP, after
    big_vision): linear layers Xavier-uniform with zero biases, the patch projection LeCun-normal,
    embedding tables N(0, 1/D), LayerNorms 1 / 0; FGCLIP2 itself already sets the probes, position
    tables and logit scale / bias (t = 10, b = -10)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                if name.endswith("patch_embedding"):
                    torch.nn.init.normal_(module.weight, std=module.in_features ** -0.5)
                else:
                    torch.nn.init.xavier_uniform_(module.weight)
                torch.nn.init.zeros_(module.bias)
            elif isinstance(module, torch.nn.Embedding):
                torch.nn.init.normal_(module.weight, std=module.embedding_dim ** -0.5)
            elif isinstance(module, torch.nn.LayerNorm):
                torch.nn.init.ones_(module.weight)
                torch.nn.init.zeros_(module.bias)
            elif hasattr(module, "in_proj_bias"):
                torch.nn.init.zeros_(module.in_proj_bias)
    return model


def make_tiny_checkpoint(out_dir: str | Path, seed: int = 0, preset: str = "tiny",
                         with_tokenizer: bool = True, model_input_names=None, init: str = "test") -> Path:
    """Writes config.json + model.safetensors (+ tokenizer files of a small bilingual tokenizer
    trained on the spot, whose vocabulary size the model then uses). ``model_input_names``: what the
    tokenizer returns, None = transformers' default (ids and attention mask); ``("input_ids",)`` for
    one that returns no attention mask (``train_tiny_tokenizer``).

    ``init``: ``"test"`` (:func:`randomize_`: every parameter O(1), so tests see each one) or
    ``"scratch"`` (the modules' own initialisation, SigLIP's position tables and logit scale / bias:
    what training from random weights needs). ``randomize_`` draws the 768-input patch projection
    at std 0.5, so the residual stream starts ~10x larger than what a block adds and a model
    trained from it learns colour but hardly shape (docs/demo_world.md)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {INITS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = {}
    if with_tokenizer:
        from .tiny_tokenizer import train_tiny_tokenizer

        overrides["text"] = {"vocab_size": train_tiny_tokenizer(out_dir, model_input_names=model_input_names)}
    torch.manual_seed(seed)
    model = FGCLIP2(FGCLIP2Config.preset(preset, **overrides))
    randomize_(model, seed) if init == "test" else siglip_init_(model)
    model.save_pretrained(out_dir)
    return out_dir
