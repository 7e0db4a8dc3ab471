"""fgclip2_det: FG-CLIP 2 and open-vocabulary detection / segmentation on OpenMMLab."""
from .utils.compat import apply_compat_patches

apply_compat_patches()  # mmengine resume under torch >= 2.6, lvis under numpy >= 1.24 (README)

from .model import (CheckpointError, FGCLIP2, FGCLIP2Config, FGCLIP2ImageProcessor,  # noqa: E402
                    FGCLIP2Tokenizer)
from . import det  # noqa: E402,F401  registers the MMDetection parts and metrics (mmdet registries)
from . import pretrain  # noqa: E402,F401  registers the pretraining model, dataset, sampler, collate
from . import seg  # noqa: E402,F401  registers the segmentor and the segmentation dataset

__version__ = "0.1.0"
__all__ = ["FGCLIP2", "FGCLIP2Config", "FGCLIP2ImageProcessor", "FGCLIP2Tokenizer", "CheckpointError",
           "apply_compat_patches"]
