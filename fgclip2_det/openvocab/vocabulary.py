"""Vocabularies: a list of classes; a class is a name or a list of synonyms (English or Chinese).

A vocabulary's *novel* classes (OV-COCO's 17, OV-LVIS's rare, the synthetic world's held-out kinds)
are named by their first name; a model never learns from them.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch

Vocabulary = Sequence[str | Sequence[str]]

# CJK ideographs: unified (+ extension A, B-F) and compatibility blocks.
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef]")


def contains_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def normalize_vocabulary(classes: Vocabulary) -> list[tuple[str, ...]]:
    """list of str / list of synonym lists -> list of tuples of names; empty input is an error."""
    if isinstance(classes, str) or not isinstance(classes, Sequence) or len(classes) == 0:
        raise ValueError(f"the vocabulary must be a non-empty list of class names (or synonym lists), "
                         f"got {classes!r}")
    vocab = []
    for i, entry in enumerate(classes):
        names = (entry,) if isinstance(entry, str) else tuple(entry) if isinstance(entry, Sequence) else ()
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"class {i} must be a non-empty name or a non-empty list of non-empty "
                             f"names, got {entry!r}")
        vocab.append(names)
    return vocab


def class_names(classes: Vocabulary) -> list[str]:
    """The first name of every class (how novel classes and reports name a class)."""
    return [names[0] for names in normalize_vocabulary(classes)]


def novel_class_mask(classes: Vocabulary, novel_classes: Sequence[str] = ()) -> torch.Tensor:
    """(C,) bool: which classes ``novel_classes`` names (by a class's first name). A novel name that
    is not in the vocabulary is an error naming it."""
    if isinstance(novel_classes, str):
        raise ValueError(f"novel_classes must be a list of class names, got the string {novel_classes!r}")
    names = class_names(classes)
    novel = tuple(novel_classes or ())
    unknown = [n for n in novel if n not in names]
    if unknown:
        raise ValueError(f"novel_classes not in the vocabulary: {unknown[:10]} ({len(unknown)} of {len(novel)})")
    return torch.tensor([n in novel for n in names], dtype=torch.bool)
