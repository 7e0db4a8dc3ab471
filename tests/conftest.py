"""Shared fixtures: a tiny random FG-CLIP 2 checkpoint in the official layout, written once per run,
and one quick demo run (tools/run_demo.py --quick) that the pipeline and web-demo tests share."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """The folder of one ``make demo QUICK=1`` run (about 2.5 minutes on 2 cores), run once per
    session: tests/tools/test_demo_pipeline.py checks what it made, tests/apps/test_serve_demo.py
    serves its models."""
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "tools/run_demo.py", "--quick", "--out", str(out)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"run_demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out
