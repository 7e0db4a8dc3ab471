"""Shared fixtures: a tiny random FG-CLIP 2 checkpoint in the official layout, written once per run."""
from __future__ import annotations

import pytest
import torch

from fgclip2_det.model import FGCLIP2
from fgclip2_det.model.tiny import make_tiny_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """Tiny checkpoint with tokenizer files (config.json, model.safetensors, tokenizer*)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-fgclip2"), seed=0)


@pytest.fixture(scope="session")
def tiny_dir_no_mask(tmp_path_factory):
    """The same tiny checkpoint (same weights as ``tiny_dir``) whose tokenizer returns no attention
    mask (tokenizer_config.json ``model_input_names = ["input_ids"]``); ``tiny_dir``'s returns one."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-fgclip2-no-mask"), seed=0,
                                model_input_names=("input_ids",))


@pytest.fixture(scope="session", params=["mask", "no_mask"])
def tiny_dir_either_mask(request):
    """``tiny_dir`` (tokenizer returns an attention mask), then ``tiny_dir_no_mask`` (it returns none)."""
    return request.getfixturevalue("tiny_dir" if request.param == "mask" else "tiny_dir_no_mask")


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    return FGCLIP2.from_pretrained(tiny_dir)


@pytest.fixture(scope="session")
def make_images():
    """make_images(sizes, seed) -> normalised (3, H, W) images in [-1, 1] of the given (H, W) sizes."""
    def make(sizes, seed=0):
        gen = torch.Generator().manual_seed(seed)
        return [torch.rand(3, h, w, generator=gen) * 2 - 1 for h, w in sizes]
    return make
