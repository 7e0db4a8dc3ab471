"""The open-vocabulary core, in plain PyTorch (no OpenMMLab): what every task shares.

* :mod:`.vocabulary`: class lists, synonyms, novel classes;
* :mod:`.text_classifier` + :mod:`.cache`: class texts (templates, languages) -> cached embeddings;
* :mod:`.scoring`: FG-CLIP 2's ``softmax(100 * cos)`` rule for boxes, per-box captions and dense maps;
* :mod:`.contract`: ``set_vocabulary(classes, novel_classes=())``, the same for every model;
* :mod:`.vit_features` + :mod:`.towers`: the vision tower as a stride-16 feature backbone.

``fgclip2_det.det``, ``.seg``, ``.apis`` and ``.integrations`` build on it, never on each other.
"""
from .cache import EmbeddingCache, default_cache_dir
from .contract import OpenVocabularyMixin
from .scoring import (BOX_TEMPERATURE, cosine, dense_cosine, dense_logits, first_max, per_region_logits,
                      zero_shot_logits, zero_shot_probs)
from .text_classifier import TextClassifier, load_templates
from .towers import load_fgclip2_tower
from .vit_features import FGCLIP2ViT, ViTFeatureMaps, default_out_indices
from .vocabulary import Vocabulary, class_names, contains_cjk, normalize_vocabulary, novel_class_mask

__all__ = ["EmbeddingCache", "default_cache_dir", "OpenVocabularyMixin", "BOX_TEMPERATURE", "cosine",
           "dense_cosine", "dense_logits", "first_max", "per_region_logits", "zero_shot_logits",
           "zero_shot_probs", "TextClassifier", "load_templates", "load_fgclip2_tower", "FGCLIP2ViT",
           "ViTFeatureMaps", "default_out_indices", "Vocabulary", "class_names", "contains_cjk",
           "normalize_vocabulary", "novel_class_mask"]
