"""CAT-Seg on FG-CLIP 2 (``FGCLIP2CATSeg``, registered in mmdet's MODELS on import): cost aggregation
with Swin spatial / linear class aggregation, QV fine-tuning of both towers, class-chunked memory."""
from .aggregator import CATSegAggregator, ClassAggregationLayer, GuidedUpsample
from .finetune import FINETUNE_MODES, SplitInProjAttention, split_dense_head, trainable_names
from .model import CATSEG_TEMPLATES, FGCLIP2CATSeg, default_guidance_layers
from .swin import GuidedSwinBlock, GuidedSwinPair, GuidedWindowAttention

__all__ = ["CATSegAggregator", "ClassAggregationLayer", "GuidedUpsample", "FINETUNE_MODES", "SplitInProjAttention",
           "split_dense_head", "trainable_names", "CATSEG_TEMPLATES", "FGCLIP2CATSeg", "default_guidance_layers",
           "GuidedSwinBlock", "GuidedSwinPair", "GuidedWindowAttention"]
