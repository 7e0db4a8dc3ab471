"""Multi-process test helpers: a free local port, and ranks run as spawned processes with a timeout,
so that a deadlock fails the test instead of blocking it."""
from __future__ import annotations

import socket

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(target, args=(), world: int = 2, timeout: float = 120) -> None:
    """``target(rank, port, *args)`` in ``world`` spawned processes; fails on a hang or a crash."""
    ctx, port = mp.get_context("spawn"), free_port()
    procs = [ctx.Process(target=target, args=(r, port, *args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join(timeout=10)
    if hung:
        pytest.fail(f"distributed workers did not finish within {timeout} s (deadlock?)")
    assert [p.exitcode for p in procs] == [0] * world, "a worker failed (its traceback is in the captured stderr)"
