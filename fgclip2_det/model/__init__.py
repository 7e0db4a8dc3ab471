"""FG-CLIP 2 in plain PyTorch (depends on torch, safetensors, tokenizers; mmcv only for RoIAlign)."""
from .checkpoint import CheckpointError, siglip2_to_fgclip2_config, siglip2_to_fgclip2_state_dict
from .config import FGCLIP2Config, TextConfig, VisionConfig, list_presets
from .fgclip2 import FGCLIP2, VisionFeatures

__all__ = ["FGCLIP2", "FGCLIP2Config", "TextConfig", "VisionConfig", "VisionFeatures", "CheckpointError",
           "list_presets", "siglip2_to_fgclip2_config", "siglip2_to_fgclip2_state_dict"]
