"""Command-line tools: tiny checkpoints, SigLIP 2 conversion, the image demo on a real photo."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgclip2_det.model import FGCLIP2
from fgclip2_det.model.checkpoint import read_state_dict, write_state_dict

ROOT = Path(__file__).resolve().parents[1]


def run_tool(*args, check=True):
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    if check and proc.returncode:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_make_tiny_checkpoint_is_deterministic(tmp_path, tiny_dir):
    run_tool("tools/make_tiny_checkpoint.py", tmp_path / "a", "--seed", "0")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tiny_dir / name).read_bytes(), name
    run_tool("tools/make_tiny_checkpoint.py", tmp_path / "b", "--seed", "1", "--no-tokenizer")
    a, b = read_state_dict(tmp_path / "a"), read_state_dict(tmp_path / "b")
    assert not torch.equal(a["boxtext_head.weight"], b["boxtext_head.weight"])
    assert not (tmp_path / "b" / "tokenizer.json").exists()


def test_convert_siglip2_tool(tmp_path, tiny_model, tiny_dir):
    src = tmp_path / "siglip2"
    cfg = json.loads((tiny_dir / "config.json").read_text())
    for k in ("keep_len", "longtext_len"):
        cfg["text_config"].pop(k)
    cfg["model_type"] = "siglip2"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    (src / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    state = {k: v for k, v in tiny_model.state_dict().items()
             if k.startswith(("text_model.", "vision_model.", "logit_")) and "position_embedding_" not in k}
    write_state_dict(src, state)
    run_tool("tools/convert_siglip2.py", src, tmp_path / "out")
    model = FGCLIP2.from_pretrained(tmp_path / "out")
    assert torch.equal(model.dense_feature_head.probe, tiny_model.vision_model.head.probe)
    assert (tmp_path / "out" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_demo_on_real_photo(tmp_path, tiny_dir):
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--out", tmp_path,
                    "--vocab", "person,dog,cat,汽车,蓝色的杯子")
    assert "19 boxes" in proc.stdout
    report = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert len(report["predictions"]) == 19
    assert report["vocab"][3:] == ["汽车", "蓝色的杯子"]
    assert all(0 < p["score"] <= 1 for p in report["predictions"])
    for name in ("demo_boxes.png", "demo_heatmap.png"):
        img = np.asarray(Image.open(tmp_path / name))
        assert img.shape == (375, 500, 3) and img.std() > 10, name


def test_demo_own_image_and_boxes(tmp_path, tiny_dir):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "b.json").write_text("[[5, 5, 60, 80], [70, 10, 130, 90]]")
    run_tool("tools/demo.py", tmp_path / "x.png", "--checkpoint", tiny_dir, "--boxes", tmp_path / "b.json",
             "--out", tmp_path / "o", "--vocab", "red,blue")
    assert len(json.loads((tmp_path / "o" / "demo.json").read_text())["predictions"]) == 2


def test_demo_empty_vocab_is_an_error(tmp_path, tiny_dir):
    proc = run_tool("tools/demo.py", "--checkpoint", tiny_dir, "--vocab", " , ", "--out", tmp_path, check=False)
    assert proc.returncode != 0 and "--vocab is empty" in proc.stderr


def test_make_synthetic_world_tool(tmp_path):
    proc = run_tool("tools/make_synthetic_world.py", tmp_path / "w", "--images", "10", "--seed", "5",
                    "--workers", "1")
    assert "wrote 10 images ({'train': 8, 'val': 2})" in proc.stdout
    meta = json.loads((tmp_path / "w" / "world.json").read_text())
    assert meta["seed"] == 5 and len(list((tmp_path / "w" / "images").glob("*.jpg"))) == 10
    # 2 val images hold too few objects for 10 "other object" negatives: topped up, never stuck
    trivial = (tmp_path / "w" / "fgovd" / "trivial.jsonl").read_text().splitlines()
    assert trivial and all(len(json.loads(line)["neg_expression"]) == 10 for line in trivial)
