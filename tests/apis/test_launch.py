"""Launcher set-up shared by tools/train.py and tools/test.py (fgclip2_det/apis/launch.py)."""
from __future__ import annotations

from mmengine.config import Config

from det_helpers import ROOT
from fgclip2_det.apis import launch


def test_gpu_mixed_precision_falls_back_to_float32_without_an_accelerator(monkeypatch, capsys):
    cfg = Config.fromfile(str(ROOT / "configs" / "ovd" / "fvit_fgclip2-base_ov-coco.py"))
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.dtype == "bfloat16"
    monkeypatch.setattr(launch, "get_device", lambda: "cuda")
    assert not launch.mixed_precision_where_supported(cfg) and cfg.optim_wrapper.type == "AmpOptimWrapper"
    monkeypatch.setattr(launch, "get_device", lambda: "cpu")
    assert launch.mixed_precision_where_supported(cfg)
    assert cfg.optim_wrapper.type == "OptimWrapper" and "dtype" not in cfg.optim_wrapper
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.clip_grad.max_norm == 1.0
    assert "AmpOptimWrapper -> OptimWrapper" in capsys.readouterr().err
    plain = Config(dict(optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1))))
    assert not launch.mixed_precision_where_supported(plain) and plain.optim_wrapper.type == "OptimWrapper"
