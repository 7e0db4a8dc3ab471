"""Drawing shared by the image demo (tools/demo.py) and the web demo: dense heat maps with a colour
bar, labelled boxes of a ``DetDataSample``, and fonts with Chinese glyphs for labels."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

CJK_PROBE = "猫蓝色的杯子"
# Names of system fonts worth probing for CJK glyphs (probing every font would be slow): whole words
# for the short region tags, substrings for the rest.
CJK_FONT_TAGS = {"sc", "tc", "hk", "jp", "kr", "cn", "tw"}
CJK_FONT_HINTS = ("cjk", "han", "hei", "ming", "song", "kai", "wenquanyi", "wqy", "fallback", "unifont",
                  "yahei", "gothic", "mincho")


# ------------------------------------------------------------------------------------- fonts
def font_has_glyphs(path: str | Path, text: str = CJK_PROBE) -> bool:
    """True if the font's character map covers every character of ``text``; PIL would otherwise
    draw the .notdef box, which is not an error, so the cmap is the only reliable test."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        font = TTFont(str(path), fontNumber=0, lazy=True)
        cmap = font.getBestCmap() or {}
    except (OSError, TTLibError, KeyError, AssertionError):
        return False
    return all(ord(ch) in cmap for ch in text)


def packaged_cjk_font() -> Path | None:
    """Noto Sans SC from the ``pylopdf-fonts-zh-cn`` wheel (OFL, 17 MB, no dependencies)."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return None
    path = Path(pylopdf_fonts_zh_cn.sans_path())
    return path if path.is_file() else None


def system_cjk_font() -> Path | None:
    """A CJK font among those matplotlib found on the system (fonts-noto-cjk, fonts-wqy-*, ...)."""
    from matplotlib import font_manager

    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: e.fname):
        name = f"{entry.name} {Path(entry.fname).stem}".lower()
        words = set(re.split(r"[^a-z]+", name))
        if (words & CJK_FONT_TAGS or any(h in name for h in CJK_FONT_HINTS)) and font_has_glyphs(entry.fname):
            return Path(entry.fname)
    return None


def label_font(path: Path | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL font for the heat map legend; Pillow's own scalable font when no CJK font exists."""
    return ImageFont.truetype(str(path), size) if path is not None else ImageFont.load_default(size)


# ------------------------------------------------------------------------------------- boxes
def draw_det_sample(image: np.ndarray, sample, classes: list[str], font_path: Path | None, out_file: str | Path,
                    score_thr: float = 0.0) -> None:
    """``sample.pred_instances`` (e.g. from ``fgclip2_det.apis.inference_model``) drawn on the RGB
    ``image`` with MMDetection's ``DetLocalVisualizer``, labels named by ``classes``. matplotlib renders
    the labels, so the CJK font becomes its sans-serif family for the call (it has Latin glyphs too)."""
    import warnings

    import matplotlib
    from matplotlib import font_manager
    from mmdet.visualization import DetLocalVisualizer
    from mmdet.visualization.palette import get_palette

    rc = {}
    if font_path is not None:
        font_manager.fontManager.addfont(str(font_path))
        family = font_manager.FontProperties(fname=str(font_path)).get_name()
        rc = {"font.family": "sans-serif", "font.sans-serif": [family, "DejaVu Sans"]}
    name = "fgclip2_demo"  # one instance per process (mmengine keeps visualizers by name)
    visualizer = (DetLocalVisualizer.get_instance(name) if DetLocalVisualizer.check_instance_created(name)
                  else DetLocalVisualizer.get_instance(name, text_color=(255, 255, 255), line_width=2))
    visualizer.dataset_meta = {"classes": list(classes), "palette": get_palette("random", len(classes))}
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*out of bounds.*")  # boxes touching the border
        visualizer.add_datasample("demo", image, sample, draw_gt=False, out_file=str(out_file),
                                  pred_score_thr=score_thr)


# ------------------------------------------------------------------------------------- heat maps
def jet(s: np.ndarray) -> np.ndarray:
    """Jet-like colour map of values in [0, 1] -> (..., 3) floats in [0, 1]."""
    return np.stack([np.clip(1.5 - abs(4 * s - k), 0, 1) for k in (3, 2, 1)], axis=-1)


def heatmap_overlay(image: np.ndarray, sim: torch.Tensor) -> Image.Image:
    """Blend the colour map of ``sim`` (h, w), upsampled bilinearly and min-max scaled, over the image."""
    h, w = image.shape[:2]
    s = F.interpolate(sim[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    s = ((s - s.min()) / (s.max() - s.min() + 1e-8)).numpy()
    return Image.fromarray((0.5 * image + 0.5 * 255 * jet(s)).astype(np.uint8))


def draw_colour_bar(canvas: Image.Image, query: str, lo: float, hi: float, font_path: Path | None) -> Image.Image:
    """Legend in the bottom-left corner: the query, a colour bar and its cosine range."""
    w, h = canvas.size
    size = max(10, round(min(w, h) / 28))
    font = label_font(font_path, size)
    pad, bar_w, bar_h = size // 2, max(60, w // 3), max(6, size // 2)
    lines = [f"query: {query}", f"{lo:+.2f}", f"{hi:+.2f}"]
    text_h = size + pad
    box = (pad, h - pad - (text_h + bar_h + size + 2 * pad), pad + bar_w + 2 * pad, h - pad)
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle(box, fill=(0, 0, 0, 170))
    x0, y0 = box[0] + pad, box[1] + pad
    draw.text((x0, y0), lines[0], font=font, fill=(255, 255, 255, 255))
    bar_y = y0 + text_h
    ramp = (255 * jet(np.linspace(0, 1, bar_w))).astype(np.uint8)
    for i, (r, g, b) in enumerate(ramp):
        draw.line([(x0 + i, bar_y), (x0 + i, bar_y + bar_h)], fill=(int(r), int(g), int(b), 255))
    draw.text((x0, bar_y + bar_h + 2), lines[1], font=font, fill=(255, 255, 255, 255))
    draw.text((x0 + bar_w, bar_y + bar_h + 2), lines[2], font=font, fill=(255, 255, 255, 255), anchor="ra")
    return Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
