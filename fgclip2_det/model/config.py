"""FG-CLIP 2 configuration, read from and written to the official ``config.json`` layout.

The architecture is data: presets (``presets/*.json``) are config.json files of the released
checkpoints' shape, so ``FGCLIP2Config.preset("base")`` and ``FGCLIP2Config.from_pretrained(dir)``
go through the same parser. Keys we do not model are kept and written back unchanged.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_DIR = Path(__file__).with_name("presets")


@dataclass
class TextConfig:
    vocab_size: int = 256000
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    max_position_embeddings: int = 64  # short / box caption length
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6
    attention_dropout: float = 0.0
    projection_size: int | None = None  # None -> hidden_size
    keep_len: int = 20  # long captions: positions < keep_len use position_embedding_ori
    longtext_len: int = 196  # long caption length = 4 * 64 - 3 * 20

    def __post_init__(self):
        if self.projection_size is None:
            self.projection_size = self.hidden_size


@dataclass
class VisionConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    num_patches: int = 256  # learned position table = 16 x 16 grid
    patch_size: int = 16
    hidden_act: str = "gelu_pytorch_tanh"
    layer_norm_eps: float = 1e-6
    attention_dropout: float = 0.0
    vision_use_head: bool = True


@dataclass
class FGCLIP2Config:
    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    # The whole config.json as read, so unknown keys survive a save/load round trip.
    raw: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.validate()

    @property
    def embed_dim(self) -> int:
        return self.vision.hidden_size

    def validate(self) -> None:
        t, v = self.text, self.vision
        problems = []
        if v.hidden_size != t.projection_size:
            problems.append(
                f"vision hidden_size ({v.hidden_size}) must equal text projection_size "
                f"({t.projection_size}): image, dense and region features are compared with text "
                "features directly")
        if t.hidden_size != v.hidden_size:
            problems.append(
                f"text hidden_size ({t.hidden_size}) must equal vision hidden_size ({v.hidden_size}): "
                "boxtext_head/longtext_head are D->D maps into the vision space")
        for name, cfg in (("text", t), ("vision", v)):
            if cfg.hidden_size % cfg.num_attention_heads:
                problems.append(f"{name} hidden_size {cfg.hidden_size} is not divisible by "
                                f"num_attention_heads {cfg.num_attention_heads}")
        grid = round(v.num_patches ** 0.5)
        if grid * grid != v.num_patches:
            problems.append(f"vision num_patches {v.num_patches} is not a square grid")
        if not 0 < t.keep_len <= t.max_position_embeddings:
            problems.append(f"text keep_len {t.keep_len} must be in (0, max_position_embeddings]")
        if not v.vision_use_head:
            problems.append("vision_use_head=False: FG-CLIP 2 needs the MAP head for image embeddings")
        if problems:
            raise ValueError("invalid FG-CLIP 2 config:\n  - " + "\n  - ".join(problems))

    # ---------------------------------------------------------------- (de)serialisation
    @classmethod
    def from_dict(cls, d: dict) -> "FGCLIP2Config":
        if "text_config" not in d or "vision_config" not in d:
            raise ValueError("config.json has no 'text_config'/'vision_config': not an FG-CLIP 2 "
                             f"(or SigLIP 2) config; top-level keys: {sorted(d)}")
        return cls(text=_dataclass_from(TextConfig, d["text_config"]),
                   vision=_dataclass_from(VisionConfig, d["vision_config"]),
                   raw=copy.deepcopy(d))

    def to_dict(self) -> dict:
        d = copy.deepcopy(self.raw)
        d.setdefault("model_type", "fgclip2")
        d.setdefault("architectures", ["FGCLIP2Model"])
        d.setdefault("initializer_factor", 1.0)
        for key, sub, model_type in (("text_config", self.text, "fgclip2_text_model"),
                                     ("vision_config", self.vision, "fgclip2_vision_model")):
            merged = dict(d.get(key, {}))
            merged.update(dataclasses.asdict(sub))
            merged.setdefault("model_type", model_type)
            d[key] = merged
        return d

    @classmethod
    def from_json_file(cls, path: str | Path) -> "FGCLIP2Config":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"FG-CLIP 2 config not found: {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        return cls.from_dict(d)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "FGCLIP2Config":
        return cls.from_json_file(Path(directory) / "config.json")

    def save(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(
            json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "FGCLIP2Config":
        """A preset by name (``list_presets()``); ``overrides`` like ``text={'vocab_size': 1000}``."""
        path = PRESET_DIR / f"{name}.json"
        if not path.is_file():
            raise KeyError(f"unknown FG-CLIP 2 preset {name!r}; available: {list_presets()}")
        d = json.loads(path.read_text(encoding="utf-8"))
        for key, values in overrides.items():
            d[f"{key}_config"].update(values)
        return cls.from_dict(d)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def _dataclass_from(kind, d: dict):
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in d.items() if k in names})
