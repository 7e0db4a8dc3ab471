"""One vocabulary contract: every model that takes class names has the same set_vocabulary, novel
classes by name, and one dataset-meta fallback."""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from fgclip2_det.openvocab import OpenVocabularyMixin, TextClassifier, novel_class_mask


class Recorder(OpenVocabularyMixin, nn.Module):
    """The smallest model of the contract: records what apply_vocabulary receives."""

    def __init__(self, checkpoint, cache_dir):
        super().__init__()
        self.configure_text({"cache_dir": cache_dir, "progress": False}, checkpoint)
        self.applied = None

    def apply_vocabulary(self, class_embeds, novel_mask):
        self.applied = (class_embeds, novel_mask)


def test_set_vocabulary_embeds_the_classes_and_marks_novel_ones(tiny_dir, tmp_path):
    model = Recorder(tiny_dir, tmp_path)
    model.set_vocabulary(["circle", ["star", "五角星"], "heart"], novel_classes=("heart",))
    want = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False)(["circle", ["star", "五角星"], "heart"])
    assert torch.equal(model.applied[0], want)
    assert model.applied[1].tolist() == [False, False, True]
    assert model.classes == ["circle", ["star", "五角星"], "heart"] and model.novel_classes == ("heart",)
    with pytest.raises(ValueError, match="novel_classes not in the vocabulary"):
        model.set_vocabulary(["circle"], ("unicorn",))
    with pytest.raises(ValueError, match="list of class names"):
        novel_class_mask(["circle"], "circle")


def test_dataset_meta_is_the_one_fallback(tiny_dir, tmp_path):
    model = Recorder(tiny_dir, tmp_path)
    with pytest.raises(RuntimeError, match="DatasetVocabularyHook"):
        model.require_vocabulary()
    model.dataset_meta = {"classes": ("circle", "heart"), "novel_classes": ("heart",)}  # as init_detector
    model.require_vocabulary()
    assert model.classes == ["circle", "heart"] and model.applied[1].tolist() == [False, True]
    with pytest.raises(ValueError, match="has no metainfo"):
        model.set_vocabulary_from_meta({"classes": ()}, "MyDataset")


def test_every_model_that_takes_class_names_has_the_same_contract():
    from fgclip2_det.det import FGCLIP2BoxClassifier, FGCLIP2CaptionRanker, FGCLIP2FViT
    from fgclip2_det.seg import FGCLIP2Segmentor

    models = [FGCLIP2FViT, FGCLIP2BoxClassifier, FGCLIP2CaptionRanker, FGCLIP2Segmentor]
    signatures = {str(inspect.signature(m.set_vocabulary)) for m in models}
    assert signatures == {"(self, classes: 'Vocabulary', novel_classes: 'Sequence[str]' = ()) -> 'None'"}
    for m in models:
        assert issubclass(m, OpenVocabularyMixin)
        assert m.set_vocabulary is OpenVocabularyMixin.set_vocabulary  # nobody overrides it
        assert "apply_vocabulary" in m.__dict__ or any("apply_vocabulary" in b.__dict__ for b in m.__mro__[1:-1]
                                                       if b is not OpenVocabularyMixin)
