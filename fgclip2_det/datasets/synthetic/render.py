"""Drawing primitives of the synthetic world: silhouettes, pattern fills and backgrounds (numpy + PIL)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .vocab import COLOURS, LIGHT_COLOURS

DARK_INK, LIGHT_INK = (35, 35, 35), (250, 250, 250)


def _polygon(points_unit, w: int, h: int) -> list[tuple[float, float]]:
    return [(x * (w - 1), y * (h - 1)) for x, y in points_unit]


def _regular(n: int, radius_ratio: float = 1.0, rotation: float = -math.pi / 2) -> list[tuple[float, float]]:
    """Unit-box vertices of a regular n-gon (or a 2n-point star when radius_ratio < 1)."""
    pts = []
    steps = n * 2 if radius_ratio < 1 else n
    for i in range(steps):
        r = 1.0 if i % 2 == 0 or radius_ratio == 1 else radius_ratio
        a = rotation + 2 * math.pi * i / steps
        pts.append((0.5 + 0.5 * r * math.cos(a), 0.5 + 0.5 * r * math.sin(a)))
    return pts


def _heart(n: int = 64) -> list[tuple[float, float]]:
    pts = [(16 * math.sin(t) ** 3, -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)))
           for t in (2 * math.pi * i / n for i in range(n))]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [((x - min(xs)) / (max(xs) - min(xs)), (y - min(ys)) / (max(ys) - min(ys))) for x, y in pts]


POLYGONS = {
    "square": [(0, 0), (1, 0), (1, 1), (0, 1)],
    "triangle": [(0.5, 0), (1, 1), (0, 1)],
    "star": _regular(5, radius_ratio=0.45),
    "heart": _heart(),
    "hexagon": _regular(6, rotation=0.0),
    "diamond": [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
    "cross": [(0.33, 0), (0.67, 0), (0.67, 0.33), (1, 0.33), (1, 0.67), (0.67, 0.67), (0.67, 1), (0.33, 1),
              (0.33, 0.67), (0, 0.67), (0, 0.33), (0.33, 0.33)],
    "arrow": [(0, 0.3), (0.6, 0.3), (0.6, 0), (1, 0.5), (0.6, 1), (0.6, 0.7), (0, 0.7)],
    "pentagon": _regular(5),
    "trapezoid": [(0.25, 0), (0.75, 0), (1, 1), (0, 1)],
}


def shape_mask(kind: str, w: int, h: int) -> np.ndarray:
    """(h, w) bool silhouette of ``kind`` filling its box."""
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    if kind in POLYGONS:
        draw.polygon(_polygon(POLYGONS[kind], w, h), fill=255)
    elif kind in ("circle", "ellipse"):
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
    elif kind == "ring":
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
        draw.ellipse([0.3 * w, 0.3 * h, 0.7 * w, 0.7 * h], fill=0)
    elif kind == "crescent":
        draw.ellipse([0, 0, w - 1, h - 1], fill=255)
        draw.ellipse([0.35 * w, -0.05 * h, 1.35 * w, 0.95 * h], fill=0)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return np.asarray(img) > 127


def pattern_fill(pattern: str, colour: str, w: int, h: int, rng: np.random.Generator,
                 contrast: float = 1.0) -> np.ndarray:
    """(h, w, 3) uint8 paint of ``colour`` with ``pattern`` drawn in a contrasting ink; ``contrast``
    < 1 blends the ink towards the paint (a fainter pattern)."""
    base = np.empty((h, w, 3), np.uint8)
    base[:] = COLOURS[colour][2]
    if pattern == "solid":
        return base
    ink = np.array(DARK_INK if colour in LIGHT_COLOURS else LIGHT_INK, np.float64)
    ink = np.round(base[0, 0] + contrast * (ink - base[0, 0])).astype(np.uint8)
    period = max(6, int(min(w, h) / rng.uniform(4.0, 6.0)))
    yy, xx = np.mgrid[0:h, 0:w]
    if pattern == "striped":
        direction = rng.integers(3)
        coord = (xx, yy, xx + yy)[direction]
        marks = (coord % period) < period / 2
    elif pattern == "dotted":
        r = period * 0.28
        marks = ((xx % period - period / 2) ** 2 + (yy % period - period / 2) ** 2) < r * r
    elif pattern == "checkered":
        marks = ((xx // (period // 2 + 1)) + (yy // (period // 2 + 1))) % 2 == 0
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    base[marks] = ink
    return base


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation colour, so backgrounds never look like an object's colour."""
    grey = rng.uniform(70, 200)
    return np.clip(grey + rng.normal(0, 18, 3), 0, 255)


def background(style: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8 background: a two-colour gradient, smooth noise or a faint texture."""
    if style == "gradient":
        a, b = _muted(rng), _muted(rng)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        t = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
        t = (t - t.min()) / (t.max() - t.min() + 1e-9)
        img = a + (b - a) * t[..., None]
    elif style == "noise":
        coarse = rng.uniform(70, 190, (6, 6)).astype(np.uint8)
        grey = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float64)
        tint = _muted(rng) - 130
        img = grey[..., None] + 0.5 * tint + rng.normal(0, 5, (h, w, 1))
    elif style == "texture":
        base, line = _muted(rng), _muted(rng)
        period = int(rng.integers(10, 24))
        yy, xx = np.mgrid[0:h, 0:w]
        grid = ((xx % period) < 2) | ((yy % period) < 2)
        img = np.where(grid[..., None], 0.7 * base + 0.3 * line, base)
    else:
        raise ValueError(f"unknown background {style!r}")
    return np.clip(img, 0, 255).astype(np.uint8)
