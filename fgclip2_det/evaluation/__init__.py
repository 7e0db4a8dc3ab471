"""Metrics MMDetection lacks: box-classification accuracy and FG-OVD (registered in mmdet METRICS)."""
from .boxclass_metric import BoxClassMetric
from .fgovd_metric import FGOVDMetric, positive_is_top

__all__ = ["BoxClassMetric", "FGOVDMetric", "positive_is_top"]
