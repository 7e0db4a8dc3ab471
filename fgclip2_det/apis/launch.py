"""Launcher set-up of tools/train.py and tools/test.py: the one place for distributed init.

'none' runs one process. With GPUs, 'pytorch' / 'slurm' / 'mpi' leave initialisation to MMEngine's
runner (``init_dist`` with ``env_cfg.dist_cfg``, NCCL). MMEngine's ``init_dist`` calls
``torch.cuda.set_device``, so on a machine without GPUs 'pytorch' (torchrun) is initialised here
with gloo, and DDP is built with ``device_ids=None``. MMEngine then skips its own initialisation
(README "Pretraining on N GPUs and M nodes").
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.device import get_device

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK")


def setup_launcher(cfg: Config, launcher: str) -> None:
    cfg.launcher = launcher
    if launcher == "none" or torch.cuda.is_available():
        return
    if launcher != "pytorch":
        raise SystemExit(f"--launcher {launcher} needs CUDA; on CPU use torchrun with --launcher pytorch "
                         "(tools/dist_train.sh)")
    missing = [v for v in TORCHRUN_VARS if v not in os.environ]
    if missing:
        raise SystemExit(f"--launcher pytorch expects torchrun's environment; missing {missing} "
                         "(start with tools/dist_train.sh CONFIG NPROC)")
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=30))
    if "runner_type" not in cfg:  # FlexibleRunner reads no model_wrapper_cfg: its strategy places the model
        wrapper = dict(cfg.get("model_wrapper_cfg") or {})
        wrapper.setdefault("type", "MMDistributedDataParallel")
        wrapper["device_ids"] = None  # a CPU module: DDP must not be given a GPU index
        cfg.model_wrapper_cfg = wrapper
    cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"


def mixed_precision_where_supported(cfg: Config) -> bool:
    """GPU recipes (the F-ViT ones) train under ``AmpOptimWrapper``, which MMEngine refuses without an
    accelerator: on a CPU-only machine the same config trains in float32 with ``OptimWrapper``
    (a note says so). Returns whether the wrapper was changed."""
    wrapper = cfg.get("optim_wrapper") or {}
    if wrapper.get("type") != "AmpOptimWrapper" or get_device() != "cpu":
        return False
    for key in ("dtype", "loss_scale", "use_fsdp"):
        wrapper.pop(key, None)
    wrapper["type"] = "OptimWrapper"
    print("note: no GPU here, so AmpOptimWrapper -> OptimWrapper (float32); the recipe's mixed precision "
          "applies on GPUs", file=sys.stderr)
    return True


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """The arguments tools/train.py and tools/test.py share: launcher and torch.distributed's rank."""
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--cfg-options`` merged and the work dir resolved (MMDetection's rule)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    return cfg
