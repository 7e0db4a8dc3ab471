"""Metrics MMDetection lacks: box-classification accuracy, FG-OVD and seen/unseen mIoU (registered in
mmdet METRICS)."""
from .boxclass_metric import BoxClassMetric
from .fgovd_metric import FGOVDMetric, positive_is_top
from .ovseg_metric import OVSemSegMetric

__all__ = ["BoxClassMetric", "FGOVDMetric", "positive_is_top", "OVSemSegMetric"]
