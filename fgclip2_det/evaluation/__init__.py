"""Metrics MMDetection lacks: box-classification accuracy, FG-OVD and seen/unseen mIoU (registered in
mmdet METRICS), and a paired per-image bootstrap of mIoU (``seg_bootstrap``)."""
from .boxclass_metric import BoxClassMetric
from .fgovd_metric import FGOVDMetric, positive_is_top
from .ovseg_metric import OVSemSegMetric
from .seg_bootstrap import OVSemSegPerImageMetric, paired_bootstrap

__all__ = ["BoxClassMetric", "FGOVDMetric", "positive_is_top", "OVSemSegMetric", "OVSemSegPerImageMetric",
           "paired_bootstrap"]
