"""FG-CLIP 2 in plain PyTorch (depends on torch, safetensors, tokenizers; mmcv only for RoIAlign)."""
from .checkpoint import CheckpointError, siglip2_to_fgclip2_config, siglip2_to_fgclip2_state_dict
from .config import FGCLIP2Config, TextConfig, VisionConfig, list_presets
from .fgclip2 import FGCLIP2, VisionFeatures
from .image_processor import FGCLIP2ImageProcessor, ProcessedImages
from .tokenizer import FGCLIP2Tokenizer

__all__ = ["FGCLIP2", "FGCLIP2Config", "TextConfig", "VisionConfig", "VisionFeatures", "CheckpointError",
           "FGCLIP2ImageProcessor", "ProcessedImages", "FGCLIP2Tokenizer", "list_presets",
           "siglip2_to_fgclip2_config", "siglip2_to_fgclip2_state_dict"]
