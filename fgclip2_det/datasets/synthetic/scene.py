"""One synthetic image: sample objects, place them with bounded occlusion, render, keep visible masks."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .render import background, pattern_fill, shape_mask
from .vocab import BACKGROUNDS, COLOURS, KINDS, PATTERNS, PROFILES, SIZES, ObjectSpec, WorldProfile

MIN_VISIBLE_FRACTION = 0.5  # an occluded object keeps at least half of its silhouette
MIN_VISIBLE_PIXELS = 80
PLACEMENT_TRIES = 30


@dataclass
class SceneObject:
    spec: ObjectSpec
    x0: int
    y0: int
    w: int
    h: int
    mask: np.ndarray  # (H, W) bool: the whole silhouette
    visible: np.ndarray  # (H, W) bool: what later objects leave uncovered


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    background: str
    objects: list[SceneObject]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def sample_image_size(rng: np.random.Generator, long_range: tuple[int, int] = (224, 512)) -> tuple[int, int]:
    """(H, W): long side in ``long_range`` (224-512 px in the ``fine`` world), short side >= 128 px,
    either orientation."""
    long_side = int(rng.integers(long_range[0], long_range[1] + 1))
    short_side = max(128, int(long_side * rng.uniform(0.5, 1.0)))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def sample_specs(rng: np.random.Generator, n: int, colours=tuple(COLOURS), patterns=tuple(PATTERNS),
                 kinds=tuple(KINDS)) -> list[ObjectSpec]:
    """``n`` distinct object specs, every field uniform (over the given kinds, colours and patterns)."""
    specs: list[ObjectSpec] = []
    kinds, sizes, colours, patterns = list(kinds), list(SIZES), list(colours), list(patterns)
    while len(specs) < n:
        spec = ObjectSpec(kinds[rng.integers(len(kinds))], sizes[rng.integers(len(sizes))],
                          colours[rng.integers(len(colours))], patterns[rng.integers(len(patterns))])
        if spec not in specs:
            specs.append(spec)
    return specs


def box_size(spec: ObjectSpec, height: int, width: int, rng: np.random.Generator,
             scale: float = 1.0) -> tuple[int, int]:
    """(w, h) of the silhouette box: the size class (times ``scale``) sets the longer side, the kind
    the aspect."""
    _, _, low, high = SIZES[spec.size]
    side = rng.uniform(low, high) * scale * min(height, width)
    aspect = KINDS[spec.kind][2]
    w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
    return max(8, min(int(round(w)), width)), max(8, min(int(round(h)), height))


def _try_place(spec, placed, height, width, rng, scale: float = 1.0) -> SceneObject | None:
    w, h = box_size(spec, height, width, rng, scale)
    local = shape_mask(spec.kind, w, h)
    for _ in range(PLACEMENT_TRIES):
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        mask = np.zeros((height, width), bool)
        mask[y0:y0 + h, x0:x0 + w] = local
        if all(_still_visible(o, mask) for o in placed):
            return SceneObject(spec, x0, y0, w, h, mask, mask.copy())
    return None


def _still_visible(obj: SceneObject, cover: np.ndarray) -> bool:
    left = np.count_nonzero(obj.visible & ~cover)
    return left >= MIN_VISIBLE_PIXELS and left >= MIN_VISIBLE_FRACTION * np.count_nonzero(obj.mask)


def make_scene(rng: np.random.Generator, profile: WorldProfile = PROFILES["fine"]) -> Scene:
    """The profile's number of objects (1-6 in ``fine``) on a random background; objects that cannot
    be placed without hiding more than half of another are dropped (never the first one)."""
    height, width = sample_image_size(rng, profile.long_side)
    style = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    image = background(style, width, height, rng)
    objects: list[SceneObject] = []
    count = int(rng.integers(profile.objects[0], profile.objects[1] + 1))
    for spec in sample_specs(rng, count, profile.colours, profile.patterns, profile.kinds):
        obj = _try_place(spec, objects, height, width, rng, profile.size_scale)
        if obj is None:
            continue
        for other in objects:
            other.visible &= ~obj.mask
        paint = pattern_fill(spec.pattern, spec.colour, obj.w, obj.h, rng, profile.pattern_contrast)
        box = (slice(obj.y0, obj.y0 + obj.h), slice(obj.x0, obj.x0 + obj.w))
        sel = obj.mask[box]
        image[box][sel] = paint[sel]
        objects.append(obj)
    return Scene(image, style, objects)
