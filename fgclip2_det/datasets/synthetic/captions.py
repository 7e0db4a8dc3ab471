"""Bilingual captions of a synthetic scene, region expressions and attribute-changed negatives."""
from __future__ import annotations

import itertools

import numpy as np

from .vocab import (ATTRIBUTE_VALUES, ATTRIBUTES, BACKGROUNDS, NUMBERS_EN, NUMBERS_ZH, POSITIONS,
                    ObjectSpec, kind_name)

LANGS = ("en", "zh")
# Hard negatives of a region: how many attributes each of the 10 changes (the paper's 1-3 mix).
HARD_NEGATIVE_PLAN = (1, 1, 1, 1, 2, 2, 2, 3, 3, 3)


def grid_position(box_xywh, width: int, height: int) -> tuple[int, int]:
    """(row, col) third of the image holding the box centre."""
    x, y, w, h = box_xywh
    return min(2, int(3 * (y + h / 2) / height)), min(2, int(3 * (x + w / 2) / width))


def relation(a_box, b_box, lang: str) -> str:
    """Where box a lies relative to box b, along the dominant axis of their centres."""
    dx = (a_box[0] + a_box[2] / 2) - (b_box[0] + b_box[2] / 2)
    dy = (a_box[1] + a_box[3] / 2) - (b_box[1] + b_box[3] / 2)
    if abs(dx) >= abs(dy):
        return ("to the left of", "左边") if dx < 0 else ("to the right of", "右边")
    return ("above", "上方") if dy < 0 else ("below", "下方")


def _rel(a_box, b_box, lang):
    return relation(a_box, b_box, lang)[LANGS.index(lang)]


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def _counts(specs: list[ObjectSpec], lang: str) -> str:
    kinds = list(dict.fromkeys(s.kind for s in specs))
    parts = []
    for k in kinds:
        n = sum(s.kind == k for s in specs)
        if lang == "en":
            parts.append(f"{NUMBERS_EN[n]} {kind_name(k, 'en') if n == 1 else _plural(kind_name(k, 'en'))}")
        else:
            parts.append(f"{NUMBERS_ZH[n]}个{kind_name(k, 'zh')}")
    if lang == "en":
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if len(parts) == 1 else "、".join(parts[:-1]) + "和" + parts[-1]


def region_expressions(specs, boxes, width, height, index: int, lang: str) -> tuple[str, str]:
    """(short_expr, long_expr) of object ``index``: attributes; attributes + place + nearest neighbour."""
    spec, box = specs[index], boxes[index]
    row_col = grid_position(box, width, height)
    short = spec.describe(lang)
    others = [j for j in range(len(specs)) if j != index]
    if lang == "en":
        where = POSITIONS[row_col][0]
        long = f"{short} {where} of the image"
    else:
        long = f"图片{POSITIONS[row_col][1]}的{spec.describe('zh', article=False)}"
    if others:
        centre = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
        j = min(others, key=lambda k: float(np.hypot(*(centre - [boxes[k][0] + boxes[k][2] / 2,
                                                                  boxes[k][1] + boxes[k][3] / 2]))))
        rel = _rel(box, boxes[j], lang)
        long += (f", {rel} {specs[j].describe('en')}" if lang == "en"
                 else f"，在{specs[j].describe('zh')}的{rel}")
    return short, long


def image_captions(specs, boxes, width, height, background: str, lang: str) -> tuple[str, str]:
    """(short caption, long caption): the two largest objects; then counts, every object, relations."""
    order = sorted(range(len(specs)), key=lambda i: -boxes[i][2] * boxes[i][3])
    named = [specs[i].describe(lang, with_size=False) for i in order[:2]]
    rest = len(specs) - len(named)
    bg = BACKGROUNDS[background][LANGS.index(lang)]
    if lang == "en":
        short = " and ".join(named) + (f" with {NUMBERS_EN[rest]} more shape{'s' * (rest > 1)}" if rest else "")
        n = len(specs)
        sentences = [f"A picture of {NUMBERS_EN[n]} shape{'s' * (n > 1)} on a {bg} background.",
                     f"There {'is' if n == 1 else 'are'} {_counts(specs, 'en')}."]
        for i in order:
            where = POSITIONS[grid_position(boxes[i], width, height)][0]
            sentences.append(f"{where[0].upper()}{where[1:]} there is {specs[i].describe('en')}.")
        for a, b in itertools.islice(itertools.combinations(order, 2), 3):
            sentences.append(f"The {specs[a].describe('en', article=False)} is {_rel(boxes[a], boxes[b], 'en')} "
                             f"the {specs[b].describe('en', article=False)}.")
        return short, " ".join(sentences)
    short = "和".join(named) + (f"等{NUMBERS_ZH[len(specs)]}个图形" if rest else "")
    sentences = [f"这张图片的{bg}背景上有{NUMBERS_ZH[len(specs)]}个图形。", f"其中有{_counts(specs, 'zh')}。"]
    for i in order:
        sentences.append(f"{POSITIONS[grid_position(boxes[i], width, height)][1]}有{specs[i].describe('zh')}。")
    for a, b in itertools.islice(itertools.combinations(order, 2), 3):
        sentences.append(f"{specs[a].describe('zh', article=False)}在{specs[b].describe('zh', article=False)}"
                         f"的{_rel(boxes[a], boxes[b], 'zh')}。")
    return short, "".join(sentences)


def changed_specs(spec: ObjectSpec, n_changed: int, exclude, attributes=ATTRIBUTES) -> list[ObjectSpec]:
    """Every spec that differs from ``spec`` in exactly ``n_changed`` of ``attributes`` (default
    size/colour/pattern, kind kept), minus ``exclude`` (the other objects of the image), in a fixed
    order."""
    out, exclude = [], set(exclude)  # specs are frozen dataclasses: hashable, a set lookup each
    for attrs in itertools.combinations(attributes, n_changed):
        choices = [[v for v in ATTRIBUTE_VALUES[a] if v != getattr(spec, a)] for a in attrs]
        for values in itertools.product(*choices):
            candidate = spec.changed(**dict(zip(attrs, values)))
            if candidate not in exclude:
                out.append(candidate)
    return out


def pick(candidates: list, n: int, rng: np.random.Generator) -> list:
    if len(candidates) < n:
        raise ValueError(f"only {len(candidates)} candidates for {n} negatives")
    return [candidates[i] for i in rng.permutation(len(candidates))[:n]]


def hard_negatives(spec: ObjectSpec, others: list[ObjectSpec], rng: np.random.Generator,
                   plan=HARD_NEGATIVE_PLAN, attributes=ATTRIBUTES) -> list[ObjectSpec]:
    """Negatives of a region: for each entry of ``plan``, a spec with that many of ``attributes``
    changed; never another object of the same image, never twice the same."""
    out: list[ObjectSpec] = []
    for k in sorted(set(plan)):
        pool = changed_specs(spec, k, [*others, *out], attributes)
        out += pick(pool, plan.count(k), rng)
    return out
