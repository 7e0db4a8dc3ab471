#!/usr/bin/env python
"""Train a config with MMEngine's runner (MMDetection's train CLI, plus our registrations).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--resume [CKPT]]
                          [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

``--resume`` alone resumes from the latest checkpoint in the work dir; with a path, from that file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import fgclip2_det  # noqa: E402,F401  registers our modules (configs also name it in custom_imports)
from fgclip2_det.apis.launch import (add_launcher_args, load_config,  # noqa: E402
                                     mixed_precision_where_supported, setup_launcher)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("--work-dir", help="where checkpoints and logs go (default: work_dirs/<config name>)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (AmpOptimWrapper)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CKPT, or from the latest checkpoint of the work dir if no path")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, e.g. train_dataloader.batch_size=4")
    add_launcher_args(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get("type", "OptimWrapper")
        if wrapper == "AmpOptimWrapper":
            print("--amp: the config already uses AmpOptimWrapper", file=sys.stderr)
        elif wrapper != "OptimWrapper":
            raise SystemExit(f"--amp replaces OptimWrapper by AmpOptimWrapper; the config uses {wrapper}")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = build_config(args)
    mixed_precision_where_supported(cfg)
    setup_launcher(cfg, args.launcher)
    # runner_type: e.g. FlexibleRunner for the FSDP / DeepSpeed strategies
    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    main()
