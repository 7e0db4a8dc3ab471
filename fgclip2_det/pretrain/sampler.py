"""Language-homogeneous *global* batches (the official ``--cn_and_en_2_train``, FG-CLIP 2's
``fgclip2/train/train.py`` BilingualSampler): at every step all ranks hold samples of one language,
so the global sigmoid loss never contrasts captions across languages.

The unit is the global batch of ``world_size × batch_size`` samples. Its order is a function of
(seed, epoch) only, identical on every rank; rank r takes slice r of each global batch. Every rank
therefore yields the same number of batches, and no sample appears twice within an epoch.
:class:`ResumeLanguageBatchesHook` restores the position after ``--resume``, so a run killed
mid-epoch continues with the samples it had not seen.
"""
from __future__ import annotations

import logging

import numpy as np
from mmengine.dist import get_dist_info
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmdet.registry import DATA_SAMPLERS, HOOKS
from torch.utils.data import BatchSampler, Sampler


@DATA_SAMPLERS.register_module()
class GlobalLanguageBatchSampler(BatchSampler):
    """Batches of one language across all ranks.

    Args:
        sampler: MMEngine's ``DefaultSampler`` built by the runner. Only its ``dataset``, ``seed``,
            ``shuffle`` and ``epoch`` are read (``DistSamplerSeedHook`` and the iteration loop
            call its ``set_epoch``); its per-rank index order is not used.
        batch_size: samples per rank.
        drop_last: True (official): a language's last incomplete global batch is dropped. False:
            it is completed with that language's first samples of the epoch, so every rank still
            gets ``batch_size`` samples.

    The dataset exposes ``language_ids``: one small integer per sample (e.g. 0 = English,
    1 = Chinese), a numpy array so that it may be memory-mapped for web-scale data. Batches hold
    ``(index, seed, epoch)`` keys: the dataset seeds its per-sample random choices with them, so they
    do not depend on worker processes or on where a run was resumed.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = True,
                 rank: int | None = None, world_size: int | None = None):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        dist_rank, dist_world = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} outside world size {self.world_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        dataset = sampler.dataset
        if not hasattr(dataset, "language_ids"):
            raise TypeError(f"{type(dataset).__name__} has no 'language_ids'; GlobalLanguageBatchSampler "
                            "needs one language id per sample")
        self.language_ids = np.asarray(dataset.language_ids)
        self.global_batch_size = self.world_size * batch_size
        counts = np.bincount(self.language_ids)
        self.batches_per_language = {lang: self._num_batches(int(n)) for lang, n in enumerate(counts) if n}
        self.num_batches = sum(self.batches_per_language.values())
        if self.num_batches == 0:
            raise ValueError(f"no language has {self.global_batch_size} samples (world size {self.world_size} "
                             f"x batch size {batch_size}); samples per language id: {counts.tolist()}. "
                             "Lower the batch size or use drop_last=False")
        self._resume_at: tuple[int, int] | None = None

    def _num_batches(self, n: int) -> int:
        return n // self.global_batch_size if self.drop_last else -(-n // self.global_batch_size)

    @property
    def seed(self) -> int:
        return int(getattr(self.sampler, "seed", 0) or 0)

    @property
    def shuffle(self) -> bool:
        return bool(getattr(self.sampler, "shuffle", True))

    def global_batches(self, epoch: int) -> list[np.ndarray]:
        """Every global batch of ``epoch`` in order: arrays of ``global_batch_size`` dataset indices."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for lang, n_batches in self.batches_per_language.items():
            indices = np.flatnonzero(self.language_ids == lang)
            if len(self.language_ids) < 2 ** 32:  # 4 bytes per sample per rank, not 8: web-scale epochs
                indices = indices.astype(np.uint32)
            if self.shuffle:
                indices = rng.permutation(indices)
            if n_batches * self.global_batch_size > len(indices):  # drop_last=False: wrap around
                indices = np.resize(indices, n_batches * self.global_batch_size)
            batches += np.split(indices[: n_batches * self.global_batch_size], n_batches)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def resume_at(self, epoch: int, position: int) -> None:
        """The next ``__iter__`` yields ``epoch``'s batches from ``position`` on (then back to normal)."""
        if not 0 <= position <= self.num_batches:
            raise ValueError(f"position {position} outside an epoch of {self.num_batches} batches")
        self._resume_at = (epoch, position)

    def __iter__(self):
        if self._resume_at is not None:
            (epoch, start), self._resume_at = self._resume_at, None
        else:
            epoch, start = int(getattr(self.sampler, "epoch", 0)), 0
        lo, hi = self.rank * self.batch_size, (self.rank + 1) * self.batch_size
        seed = self.seed
        for batch in self.global_batches(epoch)[start:]:
            yield [(i, seed, epoch) for i in batch[lo:hi].tolist()]

    def __len__(self) -> int:
        return self.num_batches

    def state_dict(self) -> dict:
        """What a checkpoint must agree with for positions to mean the same samples."""
        return {"global_batch_size": self.global_batch_size, "batches_per_epoch": self.num_batches,
                "seed": self.seed, "shuffle": self.shuffle, "drop_last": self.drop_last,
                "language_counts": np.bincount(self.language_ids).tolist()}


def _language_sampler(runner) -> GlobalLanguageBatchSampler | None:
    loader = runner.train_dataloader
    sampler = getattr(loader, "batch_sampler", None)
    return sampler if isinstance(sampler, GlobalLanguageBatchSampler) else None


class _ReplayedIterations:
    """Answers the first ``skip`` ``next()`` calls with None, then delegates.

    MMEngine's ``IterBasedTrainLoop.run`` replays ``next(dataloader_iterator)`` once per trained
    iteration after a resume (mmengine/runner/loops.py), reading and decoding every batch again;
    the sampler already starts at the right position, so those calls must not touch the data."""

    def __init__(self, iterator, skip: int):
        self.iterator, self.skip = iterator, skip

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip > 0:
            self.skip -= 1
            return None
        return next(self.iterator)


@HOOKS.register_module()
class ResumeLanguageBatchesHook(Hook):
    """Saves the sampler's layout in checkpoints and, after ``--resume``, starts the sampler at the
    first global batch the killed run had not trained on.

    Position = iterations done in the current sampler epoch: ``iter − epoch·len`` for
    ``EpochBasedTrainLoop``, ``divmod(iter, len)`` for ``IterBasedTrainLoop``. A checkpoint written
    with another global batch size, seed or dataset cannot be mapped to samples; resuming from it
    raises instead of silently repeating or skipping data."""

    priority = "VERY_HIGH"
    META_KEY = "language_batches"

    def __init__(self):
        self._saved: dict | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sampler = _language_sampler(runner)
        if sampler is not None:
            checkpoint.setdefault("meta", {})[self.META_KEY] = sampler.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._saved = checkpoint.get("meta", {}).get(self.META_KEY)

    def before_train(self, runner) -> None:
        sampler = _language_sampler(runner)
        if sampler is None or runner.iter == 0:
            return
        if self._saved is not None and self._saved != sampler.state_dict():
            raise RuntimeError(f"cannot resume mid-epoch: the checkpoint's batches were laid out as {self._saved}, "
                               f"this run lays them out as {sampler.state_dict()} (same world size x batch size, "
                               "seed and data are needed to continue with the unseen samples)")
        loop, length = runner.train_loop, len(sampler)
        iter_based = hasattr(loop, "dataloader_iterator")
        if iter_based:
            epoch, position = divmod(runner.iter, length)
        else:
            epoch, position = runner.epoch, runner.iter - runner.epoch * length
        sampler.resume_at(epoch, position)
        if iter_based:  # the loop's iterator was created before the checkpoint was loaded
            from mmengine.runner.loops import _InfiniteDataloaderIterator

            fresh = _InfiniteDataloaderIterator(loop.dataloader)
            fresh._epoch = epoch
            loop.dataloader_iterator = _ReplayedIterations(fresh, runner.iter)
        print_log(f"resuming language batches at epoch {epoch}, batch {position} of {length}",
                  logger="current", level=logging.INFO)
