"""Open-vocabulary semantic segmentation on FG-CLIP 2 dense features (registered in mmdet's MODELS /
DATASETS on import): training-free dense classification and a cost-aggregation decoder."""
from .cost_aggregation import CostAggregationDecoder
from .datasets import (PASCAL_CONTEXT59_CLASSES, VOC20_CLASSES, OVSegDataset, PascalContext59SegDataset,
                       VOC20SegDataset, VOC21SegDataset, read_class_names)
from .segmentor import FGCLIP2Segmentor
from .cat_seg import CATSegAggregator, FGCLIP2CATSeg  # noqa: F401 (registers FGCLIP2CATSeg)

__all__ = ["CostAggregationDecoder", "OVSegDataset", "read_class_names", "FGCLIP2Segmentor",
           "VOC20_CLASSES", "PASCAL_CONTEXT59_CLASSES", "VOC20SegDataset", "VOC21SegDataset",
           "PascalContext59SegDataset"]
