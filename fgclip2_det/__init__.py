"""fgclip2_det: FG-CLIP 2 and open-vocabulary detection / segmentation on OpenMMLab.

Layers (each imports only those before it; README "Where things live"):
``utils`` < ``model`` (FG-CLIP 2, plain PyTorch) < ``datasets`` < ``openvocab`` (the open-vocabulary
core, plain PyTorch) < ``pretrain`` / ``det`` / ``seg`` / ``evaluation`` (OpenMMLab) < ``apis`` /
``apps`` / ``integrations``.

Registration: ``fgclip2_det.det``, ``.seg``, ``.pretrain`` and ``.evaluation`` register their modules in
MMDetection's registries when imported, which configs do through ``custom_imports``. Inside an
OpenMMLab program (mmengine already imported, as when a config's ``custom_imports=['fgclip2_det']`` is
read), ``import fgclip2_det`` registers all four; elsewhere it stays plain PyTorch, so
``from fgclip2_det.model import FGCLIP2`` never imports mmdet, mmengine or mmcv.
"""
import sys

from .utils.compat import apply_compat_patches

apply_compat_patches()  # mmengine resume under torch >= 2.6, lvis under numpy >= 1.24 (README)

from .model import (CheckpointError, FGCLIP2, FGCLIP2Config, FGCLIP2ImageProcessor,  # noqa: E402
                    FGCLIP2Tokenizer)


def register_all_modules() -> None:
    """Import (and so register) every OpenMMLab part: detection, segmentation, pretraining, metrics."""
    from . import det, evaluation, pretrain, seg  # noqa: F401


if "mmengine" in sys.modules:
    register_all_modules()

__version__ = "0.1.0"
__all__ = ["FGCLIP2", "FGCLIP2Config", "FGCLIP2ImageProcessor", "FGCLIP2Tokenizer", "CheckpointError",
           "apply_compat_patches", "register_all_modules"]
