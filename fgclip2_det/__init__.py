"""fgclip2_det: FG-CLIP 2 and open-vocabulary detection / segmentation on OpenMMLab."""
from .model import FGCLIP2, FGCLIP2Config, CheckpointError  # noqa: F401

__version__ = "0.1.0"
