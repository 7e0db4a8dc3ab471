"""Language-homogeneous batches (the official ``--cn_and_en_2_train``): every batch is all English
or all Chinese, so the global sigmoid loss never contrasts captions across languages."""
from __future__ import annotations

from mmdet.registry import DATA_SAMPLERS
from torch.utils.data import BatchSampler, Sampler


@DATA_SAMPLERS.register_module()
class LanguageGroupedBatchSampler(BatchSampler):
    """Wraps an index sampler; groups its indices by ``dataset.languages`` into batches.

    Order within a language follows the wrapped sampler (so its shuffling and seeding apply). With
    ``drop_last=False`` the incomplete batch of each language is yielded at the end of an epoch.
    """

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool = False):
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.languages = sampler.dataset.languages

    def __iter__(self):
        buckets: dict[str, list[int]] = {}
        for idx in self.sampler:
            bucket = buckets.setdefault(self.languages[idx], [])
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()
        if not self.drop_last:
            for bucket in buckets.values():
                if bucket:
                    yield bucket

    def __len__(self) -> int:
        counts: dict[str, int] = {}
        for lang in (self.languages[i] for i in self.sampler):
            counts[lang] = counts.get(lang, 0) + 1
        if self.drop_last:
            return sum(c // self.batch_size for c in counts.values())
        return sum(-(-c // self.batch_size) for c in counts.values())
