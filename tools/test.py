#!/usr/bin/env python
"""Evaluate a config with MMEngine's runner (MMDetection's test CLI, plus our registrations).

    python tools/test.py CONFIG [CHECKPOINT] [--work-dir DIR] [--out RESULTS.pkl] [--show-dir DIR]
                         [--metrics-out METRICS.json]
                         [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]

CHECKPOINT is a runner checkpoint (.pth) of a trained detector. It is optional: FG-CLIP 2 models
load their weights from the checkpoint directory named in the config when they are built, e.g.
``--cfg-options model.backbone.checkpoint=checkpoints/fg-clip2-base``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import fgclip2_det  # noqa: E402,F401  registers our modules (configs also name it in custom_imports)
from fgclip2_det.apis.launch import add_launcher_args, load_config, setup_launcher  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="runner checkpoint to load (optional for FG-CLIP 2 models)")
    parser.add_argument("--work-dir", help="where logs and metrics go (default: work_dirs/<config name>)")
    parser.add_argument("--out", help="also dump every prediction to this .pkl file")
    parser.add_argument("--metrics-out", help="also write the metrics to this .json file")
    parser.add_argument("--show-dir", help="draw predictions into WORK_DIR/TIMESTAMP/SHOW_DIR")
    parser.add_argument("--show", action="store_true", help="show predictions in a window")
    parser.add_argument("--wait-time", type=float, default=2.0, help="seconds per shown image")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction,
                        help="override config entries, e.g. model.backbone.checkpoint=DIR")
    add_launcher_args(parser)
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.out:
        if not args.out.endswith((".pkl", ".pickle")):
            raise SystemExit(f"--out must be a .pkl or .pickle file, got {args.out}")
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type="DumpResults", out_file_path=args.out)]
    return cfg


def enable_visualization(cfg: Config, args: argparse.Namespace) -> None:
    hooks = cfg.get("default_hooks", {})
    if "visualization" not in hooks:
        raise SystemExit("--show/--show-dir need default_hooks.visualization (DetVisualizationHook) in the config")
    hook = hooks["visualization"]
    hook["draw"] = True
    if args.show:
        hook["show"] = True
        hook["wait_time"] = args.wait_time
    if args.show_dir:
        hook["test_out_dir"] = args.show_dir


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = build_config(args)
    setup_launcher(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.metrics_out and runner.rank == 0:
        write_metrics(args.metrics_out, metrics)
    return metrics


def write_metrics(path: str, metrics: dict) -> None:
    """JSON of the scalar metrics (numpy scalars as floats), for scripts and reports."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    values = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
    out.write_text(json.dumps(values, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
