"""The synthetic world's vocabulary: object kinds and their attributes, in English and Chinese.

Each object has a kind (its class) and three fine-grained attributes: size, colour and pattern.
Hard negatives and FG-OVD difficulties change 1, 2 or 3 of those attributes.
"""
from __future__ import annotations

from dataclasses import dataclass

# kind -> (English, Chinese, width / height of its box)
KINDS = {
    "circle": ("circle", "圆形", 1.0),
    "square": ("square", "正方形", 1.0),
    "triangle": ("triangle", "三角形", 1.15),
    "star": ("star", "五角星", 1.0),
    "heart": ("heart", "心形", 1.0),
    "hexagon": ("hexagon", "六边形", 1.15),
    "diamond": ("diamond", "菱形", 0.75),
    "cross": ("cross", "十字形", 1.0),
    "crescent": ("crescent", "月牙形", 0.8),
    "ring": ("ring", "圆环", 1.0),
    "arrow": ("arrow", "箭头", 1.6),
    "pentagon": ("pentagon", "五边形", 1.0),
    "ellipse": ("ellipse", "椭圆", 1.7),
    "trapezoid": ("trapezoid", "梯形", 1.5),
}
# Kinds never boxed in the detection training split (OV-COCO style); present everywhere else.
NOVEL_KINDS = ("star", "heart", "crescent", "arrow")
BASE_KINDS = tuple(k for k in KINDS if k not in NOVEL_KINDS)

# colour -> (English, Chinese, RGB)
COLOURS = {
    "red": ("red", "红色", (215, 35, 35)),
    "green": ("green", "绿色", (35, 160, 55)),
    "blue": ("blue", "蓝色", (35, 75, 215)),
    "yellow": ("yellow", "黄色", (245, 215, 30)),
    "orange": ("orange", "橙色", (245, 135, 20)),
    "purple": ("purple", "紫色", (135, 50, 185)),
    "pink": ("pink", "粉色", (245, 135, 190)),
    "white": ("white", "白色", (248, 248, 248)),
    "black": ("black", "黑色", (22, 22, 22)),
    "brown": ("brown", "棕色", (125, 75, 35)),
    "cyan": ("cyan", "青色", (30, 205, 215)),
    "gray": ("gray", "灰色", (128, 128, 128)),
}
LIGHT_COLOURS = ("yellow", "pink", "white", "cyan")  # patterned with dark ink, the rest with white

# pattern -> (English, Chinese)
PATTERNS = {"solid": ("solid", "纯色"), "striped": ("striped", "条纹"), "dotted": ("dotted", "圆点"),
            "checkered": ("checkered", "格子")}

# size -> (English, Chinese, box side as a fraction of the image's shorter side: low, high)
SIZES = {"small": ("small", "小的", 0.16, 0.22), "medium": ("medium", "中等的", 0.27, 0.35),
         "large": ("large", "大的", 0.42, 0.52)}

ATTRIBUTES = ("size", "colour", "pattern")  # what hard negatives change
ATTRIBUTE_VALUES = {"size": tuple(SIZES), "colour": tuple(COLOURS), "pattern": tuple(PATTERNS),
                    "kind": tuple(KINDS)}  # kind: changed by the ``shapes`` profile's hard negatives only

# where an object is, from its box centre in thirds of the image: (row, col) -> (English, Chinese)
POSITIONS = {
    (0, 0): ("in the top left", "左上方"), (0, 1): ("at the top", "上方"), (0, 2): ("in the top right", "右上方"),
    (1, 0): ("on the left", "左边"), (1, 1): ("in the center", "中间"), (1, 2): ("on the right", "右边"),
    (2, 0): ("in the bottom left", "左下方"), (2, 1): ("at the bottom", "下方"),
    (2, 2): ("in the bottom right", "右下方"),
}
BACKGROUNDS = {"gradient": ("gradient", "渐变"), "noise": ("mottled", "斑驳"), "texture": ("textured", "纹理")}
NUMBERS_EN = ("zero", "one", "two", "three", "four", "five", "six")
NUMBERS_ZH = ("零", "一", "两", "三", "四", "五", "六")


@dataclass(frozen=True, order=True)
class ObjectSpec:
    """What an object is; two objects of one image never share all four fields."""
    kind: str
    size: str
    colour: str
    pattern: str

    def changed(self, **values) -> "ObjectSpec":
        return ObjectSpec(**{**self.__dict__, **values})

    def differences(self, other: "ObjectSpec") -> list[str]:
        return [a for a in ("kind",) + ATTRIBUTES if getattr(self, a) != getattr(other, a)]

    def describe(self, lang: str = "en", with_size: bool = True, article: bool = True) -> str:
        """"a large striped red circle" / "一个大的红色条纹圆形"."""
        if lang == "en":
            words = ([SIZES[self.size][0]] if with_size else []) + [
                PATTERNS[self.pattern][0], COLOURS[self.colour][0], KINDS[self.kind][0]]
            text = " ".join(words)
            return f"{'an' if text[0] in 'aeiou' else 'a'} {text}" if article else text
        if lang == "zh":
            text = (SIZES[self.size][1] if with_size else "") + COLOURS[self.colour][1] + \
                PATTERNS[self.pattern][1] + KINDS[self.kind][1]
            return ("一个" + text) if article else text
        raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")


def kind_name(kind: str, lang: str) -> str:
    return KINDS[kind][0 if lang == "en" else 1]


@dataclass(frozen=True)
class WorldProfile:
    """How a world is drawn and described. Captions and negatives draw on the whole vocabulary above;
    the world's classes are the kinds it draws (all 14 unless ``kinds`` says fewer: the configs name
    14, tools/run_demo.py passes a smaller world's classes to them).

    ``fine`` is the world of the evidence runs (many small, busily filled objects: hard for a tiny
    model). ``shapes`` / ``shapes4``: fewer, larger objects, fills of low contrast, region hard
    negatives that may change the kind. ``six_kinds`` is the demo's world, chosen by the ablations
    of docs/demo_world.md: the first in which the tiny model learns the kind from its captions.
    """
    name: str
    long_side: tuple[int, int] = (224, 512)  # image long side in pixels, low and high (inclusive)
    objects: tuple[int, int] = (1, 6)  # objects per image, low and high (inclusive)
    size_scale: float = 1.0  # multiplies SIZES' box-side fractions
    pattern_contrast: float = 1.0  # 1 = pattern ink as is; lower blends the ink towards the paint
    negative_attributes: tuple[str, ...] = ATTRIBUTES  # what region hard negatives may change
    colours: tuple[str, ...] = tuple(COLOURS)  # the colours objects are painted in (captions may name any)
    patterns: tuple[str, ...] = tuple(PATTERNS)  # the fills objects are drawn with
    kinds: tuple[str, ...] = tuple(KINDS)  # the kinds drawn: the world's classes, in KINDS order
    region_names: float = 0.0  # share of region short expressions that are the bare kind ("a circle")

    def __post_init__(self):
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(f"world profile {self.name!r}: kinds must be a non-empty subset of {list(KINDS)}; "
                             f"unknown: {unknown}")
        if not 0.0 <= self.region_names <= 1.0:
            raise ValueError(f"world profile {self.name!r}: region_names is a share in [0, 1], got {self.region_names}")

    @property
    def classes(self) -> tuple[str, ...]:
        """The drawn kinds in ``KINDS`` order: category ids 1..K and label-map values follow it."""
        return tuple(k for k in KINDS if k in self.kinds)

    @property
    def novel_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in self.classes if k in NOVEL_KINDS)

    @property
    def base_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in self.classes if k not in NOVEL_KINDS)

    def metainfo(self) -> dict:
        """MMDetection ``metainfo`` of this world's detection / BoxClass files (English names)."""
        return {"classes": tuple(kind_name(k, "en") for k in self.classes),
                "base_classes": tuple(kind_name(k, "en") for k in self.base_kinds),
                "novel_classes": tuple(kind_name(k, "en") for k in self.novel_kinds)}


PROFILES = {
    "fine": WorldProfile("fine"),
    "shapes": WorldProfile("shapes", long_side=(160, 256), objects=(1, 3), size_scale=1.4,
                           pattern_contrast=0.35, negative_attributes=("kind",) + ATTRIBUTES),
    "shapes4": WorldProfile("shapes4", long_side=(160, 256), objects=(1, 3), size_scale=1.4,
                            pattern_contrast=0.35, negative_attributes=("kind",) + ATTRIBUTES,
                            colours=("red", "green", "blue", "yellow"), patterns=("solid", "striped")),
    # The demo's world (docs/demo_world.md): six kinds of distinct silhouette (star and crescent novel),
    # two solid colours, and every region's short expression the bare kind ("a circle") against the
    # other kinds' names, so the region losses carry the kind as a label would.
    "six_kinds": WorldProfile("six_kinds", long_side=(160, 256), objects=(1, 3), size_scale=1.4,
                              negative_attributes=("kind",) + ATTRIBUTES, colours=("red", "blue"),
                              patterns=("solid",), region_names=1.0,
                              kinds=("circle", "square", "triangle", "cross", "star", "crescent")),
}


def world_profile(name: str) -> WorldProfile:
    if name not in PROFILES:
        raise ValueError(f"unknown world profile {name!r}; known: {sorted(PROFILES)}")
    return PROFILES[name]
