"""FG-CLIP 2 pretraining (stage 1 / stage 2) on MMEngine runners: data, losses, the training model."""
from .collate import naflex_pretrain_collate
from .dataset import FineHARDDataset
from .fsdp2 import FSDP2Strategy
from .model import FGCLIP2Pretrainer, build_fgclip2
from .sampler import GlobalLanguageBatchSampler, ResumeLanguageBatchesHook
from .shards import FineHARDShardDataset

__all__ = ["FineHARDDataset", "FSDP2Strategy", "FineHARDShardDataset", "FGCLIP2Pretrainer", "GlobalLanguageBatchSampler", "ResumeLanguageBatchesHook", "build_fgclip2",
           "naflex_pretrain_collate"]
