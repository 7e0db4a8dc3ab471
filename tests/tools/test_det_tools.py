"""tools/test.py and tools/train.py: MMDetection's CLI shape on our configs."""
from __future__ import annotations

import pickle
import runpy
import subprocess
import sys

import pytest
import torch

from det_helpers import (BOXCLASS_CONFIG, ROOT, mmdet_scope,  # noqa: F401  (mmdet_scope: autouse fixture)
                         shared_text_cache, write_coco_set)
from fgclip2_det.model.checkpoint import read_state_dict


def _tool(name):
    return runpy.run_path(str(ROOT / "tools" / f"{name}.py"), run_name=f"tool_{name}")


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_set_tools")
    write_coco_set(root)
    return root


def _data_options(tiny_dir, coco_set):
    return [f"model.backbone.checkpoint={tiny_dir}", f"model.text_classifier.cache_dir={shared_text_cache(tiny_dir)}",
            "model.text_classifier.progress=False", f"test_dataloader.dataset.data_root={coco_set}",
            "test_dataloader.dataset.ann_file=ann.json", "test_dataloader.dataset.data_prefix.img=img/",
            "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False"]


@pytest.mark.slow
def test_test_py_runs_without_a_checkpoint_file(tmp_path, tiny_dir, coco_set):
    out = tmp_path / "preds.pkl"
    proc = subprocess.run([sys.executable, "tools/test.py", str(BOXCLASS_CONFIG), "--work-dir", str(tmp_path / "w"),
                           "--out", str(out), "--show-dir", "vis", "--cfg-options", *_data_options(tiny_dir, coco_set)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "boxclass/top1" in proc.stdout + proc.stderr
    preds = pickle.loads(out.read_bytes())
    assert [len(p["pred_instances"]["labels"]) for p in preds] == [19, 3, 3]
    assert sorted(p.name for p in (tmp_path / "w").glob("*/vis/*")) == ["gray.png", "rgb.png", "voc.jpg"]


def test_test_py_arguments(tmp_path):
    tool = _tool("test")
    args = tool["parse_args"]([str(BOXCLASS_CONFIG), "--out", "x.pkl", "--show-dir", "vis",
                               "--cfg-options", "model.topk=3"])
    cfg = tool["build_config"](args)
    assert args.checkpoint is None and cfg.load_from is None and cfg.model.topk == 3
    assert cfg.work_dir.endswith("boxclass_fgclip2-base_coco")
    assert cfg.test_evaluator[-1] == dict(type="DumpResults", out_file_path="x.pkl")
    assert cfg.default_hooks.visualization.draw and cfg.default_hooks.visualization.test_out_dir == "vis"
    assert tool["build_config"](tool["parse_args"]([str(BOXCLASS_CONFIG), "run.pth"])).load_from == "run.pth"
    with pytest.raises(SystemExit, match=r"\.pkl"):
        tool["build_config"](tool["parse_args"]([str(BOXCLASS_CONFIG), "--out", "x.json"]))


TRAIN_CONFIG = """
_base_ = ['{base}']
model = dict(backbone=dict(trainable_blocks=1))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        dataset=_base_.test_dataloader.dataset)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
val_dataloader = val_cfg = val_evaluator = None
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.0))
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""


def test_train_py_fine_tunes_the_last_block(tmp_path, tiny_dir, coco_set):
    """One epoch through tools/train.py: the loss path runs, only the last block moves, and the
    runner's init_weights() leaves the loaded FG-CLIP 2 weights alone; --amp/--resume parse."""
    config = tmp_path / "train_cfg.py"
    config.write_text(TRAIN_CONFIG.format(base=BOXCLASS_CONFIG))
    options = _data_options(tiny_dir, coco_set)
    options += [o.replace("test_dataloader.dataset", "train_dataloader.dataset") for o in options if "dataset." in o]
    tool = _tool("train")
    tool["main"]([str(config), "--work-dir", str(tmp_path / "w"), "--cfg-options", *options])
    saved = torch.load(tmp_path / "w" / "epoch_1.pth", map_location="cpu", weights_only=True)["state_dict"]
    original = read_state_dict(tiny_dir)
    prefix = "backbone.fgclip2.vision_model.encoder.layers."
    assert torch.equal(saved[prefix + "0.mlp.fc1.weight"], original["vision_model.encoder.layers.0.mlp.fc1.weight"])
    assert not torch.equal(saved[prefix + "1.mlp.fc1.weight"], original["vision_model.encoder.layers.1.mlp.fc1.weight"])
    assert torch.equal(saved["backbone.fgclip2.dense_feature_head.mlp.fc1.weight"],
                       original["dense_feature_head.mlp.fc1.weight"])

    cfg = tool["build_config"](tool["parse_args"]([str(config), "--amp", "--resume"]))
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.resume is True and cfg.load_from is None
    cfg = tool["build_config"](tool["parse_args"]([str(config), "--resume", "x.pth"]))
    assert cfg.resume is True and cfg.load_from == "x.pth"
