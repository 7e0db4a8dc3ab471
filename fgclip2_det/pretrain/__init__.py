"""FG-CLIP 2 pretraining (stage 1 / stage 2) on MMEngine runners: data, losses, the training model."""
from .collate import naflex_pretrain_collate
from .dataset import FineHARDDataset
from .model import FGCLIP2Pretrainer, build_fgclip2
from .sampler import LanguageGroupedBatchSampler

__all__ = ["FineHARDDataset", "FGCLIP2Pretrainer", "LanguageGroupedBatchSampler", "build_fgclip2",
           "naflex_pretrain_collate"]
