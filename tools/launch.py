"""Launcher set-up shared by tools/train.py and tools/test.py: the one place for distributed init.

'none' runs one process. 'pytorch' / 'slurm' / 'mpi' leave initialisation to MMEngine's runner
(``init_dist`` with ``env_cfg.dist_cfg``), which needs CUDA: it calls ``torch.cuda.set_device``.
CPU-only distributed runs need the process group initialised here with gloo before the runner is
built, and ``model_wrapper_cfg`` with ``device_ids=None`` (DESIGN.md §1); until that lands they
stop here with a clear message instead of a CUDA error deep inside MMEngine.
"""
from __future__ import annotations

import torch
from mmengine.config import Config


def setup_launcher(cfg: Config, launcher: str) -> None:
    cfg.launcher = launcher
    if launcher != "none" and not torch.cuda.is_available():
        raise SystemExit(f"--launcher {launcher} needs CUDA here: CPU-only distributed runs (gloo) are "
                         "not wired up yet; run with --launcher none")
