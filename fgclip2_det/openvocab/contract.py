"""The one vocabulary contract of every model that takes class names.

:class:`OpenVocabularyMixin` gives the detector, the box classifier, the FG-OVD caption ranker and the
segmentor the same ``set_vocabulary(classes, novel_classes=())``: class texts are embedded by a
:class:`~.text_classifier.TextClassifier` built from the model's ``text_cfg``, then handed to the
model's ``apply_vocabulary``. ``DatasetVocabularyHook`` and the inference API call it the same way
for every model. A model loaded by ``mmdet.apis.init_detector`` carries its training set's
``dataset_meta`` but no class embeddings (they are buffers, not saved): :meth:`require_vocabulary`
embeds those classes, the one place that falls back to dataset meta.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import torch

from .text_classifier import TextClassifier
from .vocabulary import Vocabulary, novel_class_mask


class OpenVocabularyMixin:
    """``set_vocabulary(classes, novel_classes=())`` for a model with ``text_cfg`` (the
    :class:`TextClassifier` arguments) and an ``apply_vocabulary(class_embeds, novel_mask)`` that
    installs them (module doc). Inference takes a vocabulary of any size; a model that must keep its
    size while training says so in ``apply_vocabulary``."""

    classes: list | None = None
    novel_classes: tuple[str, ...] = ()
    text_cfg: dict

    def configure_text(self, text_classifier: dict | None, checkpoint: str, **defaults) -> None:
        """The :class:`TextClassifier` arguments: ``defaults``, then the config's ``text_classifier``;
        the checkpoint defaults to the backbone's."""
        self.text_cfg = {**defaults, "checkpoint": checkpoint, **dict(text_classifier or {})}

    def set_vocabulary(self, classes: Vocabulary, novel_classes: Sequence[str] = ()) -> None:
        """Embed ``classes`` (or read them from the embedding cache) and use them from now on."""
        novel = novel_class_mask(classes, novel_classes)
        self.apply_vocabulary(self.embed_classes(classes), novel)
        self.classes = [c if isinstance(c, str) else list(c) for c in classes]
        self.novel_classes = tuple(novel_classes or ())

    def set_vocabulary_from_meta(self, metainfo: dict, source: str = "dataset") -> None:
        """``metainfo['classes']`` with its ``novel_classes`` (a dataset's or a checkpoint's meta)."""
        classes = (metainfo or {}).get("classes")
        if not classes:
            raise ValueError(f"{source} has no metainfo['classes'] to use as vocabulary")
        self.set_vocabulary([c if isinstance(c, str) else list(c) for c in classes],
                            tuple(metainfo.get("novel_classes") or ()))

    def require_vocabulary(self) -> None:
        """Make sure a vocabulary is set: else embed ``dataset_meta`` (a model from
        ``mmdet.apis.init_detector``), else an error that says how to give one."""
        meta = getattr(self, "dataset_meta", None) or {}
        if self.classes is None and meta.get("classes"):
            self.set_vocabulary_from_meta(meta, "the checkpoint's dataset_meta")
        if self.classes is None:
            raise RuntimeError(f"{type(self).__name__} has no vocabulary: call set_vocabulary(classes), pass "
                               "classes=... or add custom_hooks=[dict(type='DatasetVocabularyHook')] to the config")

    def embed_classes(self, classes: Vocabulary) -> torch.Tensor:
        """(C, D) L2-normalised class embeddings by the model's text classifier."""
        return TextClassifier(**{"device": self.vocabulary_device(), **self.text_cfg})(classes)

    def vocabulary_device(self) -> torch.device:
        """Where the text tower runs on a cache miss: the model's device."""
        tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define apply_vocabulary(class_embeds, novel_mask)")
