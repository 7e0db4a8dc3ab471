"""fgclip2_det: FG-CLIP 2 and open-vocabulary detection / segmentation on OpenMMLab."""
from .utils.compat import apply_compat_patches

apply_compat_patches()  # mmengine resume under torch >= 2.6, lvis under numpy >= 1.24 (README)

from .model import (CheckpointError, FGCLIP2, FGCLIP2Config, FGCLIP2ImageProcessor,  # noqa: E402
                    FGCLIP2Tokenizer)
from .utils.compat import is_installed  # noqa: E402

# The OpenMMLab parts register into MMDetection's registries when imported, so configs that name
# 'fgclip2_det' (or a subpackage) in custom_imports find them. The plain-PyTorch model (fgclip2_det.model)
# needs none of OpenMMLab: without it, `import fgclip2_det.model` still works.
if all(is_installed(name) for name in ("mmengine", "mmcv", "mmdet")):
    from . import det  # noqa: E402,F401  the MMDetection parts and metrics
    from . import pretrain  # noqa: E402,F401  the pretraining model, datasets, sampler, collate, FSDP2
    from . import seg  # noqa: E402,F401  the segmentor and the segmentation dataset

__version__ = "0.1.0"
__all__ = ["FGCLIP2", "FGCLIP2Config", "FGCLIP2ImageProcessor", "FGCLIP2Tokenizer", "CheckpointError",
           "apply_compat_patches"]
