"""The FG-CLIP 2 feature backbone in MMDetection's registry (the module is plain PyTorch:
:mod:`fgclip2_det.openvocab.vit_features`, where its padding hand-off is described)."""
from mmdet.registry import MODELS

from ..openvocab.vit_features import FGCLIP2ViT, ViTFeatureMaps, default_out_indices

MODELS.register_module(module=FGCLIP2ViT)

__all__ = ["FGCLIP2ViT", "ViTFeatureMaps", "default_out_indices"]
