"""Test-only hooks for multi-process runner tests, imported by the training subprocesses through
``custom_imports`` (the test puts this folder on PYTHONPATH).

``RecordBatchesHook`` writes what each rank actually trained on, step by step, decoded from the
batch itself (not from the sampler): batch size, language (English short captions start with the
official "a photo of " prefix) and the short captions. ``KillAtHook`` stops every rank after an
iteration whose checkpoint has been written, like a job killed between two iterations.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from fgclip2_det.model.tokenizer import FGCLIP2Tokenizer


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


@HOOKS.register_module()
class RecordBatchesHook(Hook):
    priority = "LOWEST"

    def __init__(self, out_dir: str, tokenizer: str):
        self.out_dir, self.tokenizer = Path(out_dir), FGCLIP2Tokenizer.from_pretrained(tokenizer)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        shorts = [self.tokenizer.decode(ids) for ids in data_batch["text_short"]]
        english = [s.startswith("a photo of") for s in shorts]
        record = {"iter": runner.iter, "epoch": runner.epoch, "n": len(data_batch["images"]),
                  "language": "en" if all(english) else "zh" if not any(english) else "mixed",
                  "short": shorts, "replaced": int(data_batch["stats"]["replaced_samples"])}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / f"rank{_rank()}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


@HOOKS.register_module()
class KillAtHook(Hook):
    """After iteration ``n`` (1-based, checkpoint hook already run): all ranks stop together."""
    priority = "LOWEST"

    def __init__(self, n: int):
        self.n = n

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.n:
            if dist.is_initialized():
                dist.barrier()  # rank 0 has finished writing the checkpoint
            raise SystemExit(f"killed after iteration {self.n}")
