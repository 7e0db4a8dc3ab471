"""A tiny bilingual tokenizer, trained on the spot, shaped like SigLIP 2's Gemma tokenizer.

Tests and tiny checkpoints cannot download the 256k Gemma vocabulary, so this trains a small
byte-fallback BPE on an embedded English + Chinese corpus of the words the synthetic world and the
box-classification prompts use (colours, patterns, shapes, objects, sizes, positions, counts).

Layout, as in Gemma / SigLIP 2: ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, ``<unk>``=3, ``<mask>``=4,
then the 256 byte tokens ``<0x00>``..``<0xFF>`` (ids 5..260, so any text encodes without ``<unk>``),
then the learned BPE tokens. Normaliser ``Replace(" ", "▁")``, decoder ``Replace("▁", " ") +
ByteFallback + Fuse`` (Siglip2Tokenizer's). Differences, chosen on purpose:

* no ``Lowercase`` normaliser (transformers' Siglip2Tokenizer adds one; the released checkpoints'
  Gemma files do not): lower-casing is done in Python by :class:`FGCLIP2Tokenizer`, configurable
  because the official Chinese evaluations do not lower-case;
* a ``Metaspace`` pre-tokeniser (split at "▁", no prefix) instead of Gemma's no-op split, so merges
  stay within words and the tiny vocabulary is spent on words;
* the post-processor appends ``<eos>`` (``$A <eos>``) and no ``<bos>`` (SigLIP 2: add_bos false).

What the tokenizer returns follows transformers' default (``input_ids`` and ``attention_mask``)
unless ``model_input_names`` is given: ``("input_ids",)`` writes a tokenizer that returns no
attention mask, the other case the evaluations' ``attention_mask='auto'`` must handle.

Training is deterministic: same arguments, byte-identical files.
"""
from __future__ import annotations

import itertools
import json
import random
import string
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

__all__ = ["train_tiny_tokenizer", "tiny_corpus", "SPECIAL_TOKENS", "TOKENIZER_CLASS"]

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
#: tokenizer_class written to tokenizer_config.json; transformers 5 loads it from the local files.
TOKENIZER_CLASS = "TokenizersBackend"
MODEL_MAX_LENGTH = 196

TEMPLATES_PATH = Path(__file__).resolve().parents[1] / "data" / "prompt_templates_en.txt"

EN_COLOURS = ("red", "blue", "green", "yellow", "black", "white", "purple", "orange", "gray",
              "pink", "brown", "cyan", "magenta", "gold", "silver", "dark", "light")
EN_PATTERNS = ("striped", "dotted", "checkered", "plain", "wavy", "spotted", "zigzag", "solid",
               "dashed", "gradient")
# Every kind of the synthetic world (fgclip2_det/datasets/synthetic/vocab.py) is here, so each kind
# word is one token as in a real vocabulary (tests/model/test_tokenizer.py checks it).
EN_SHAPES = ("circle", "square", "triangle", "rectangle", "star", "diamond", "ellipse", "hexagon",
             "cross", "ring", "heart", "pentagon", "crescent", "arrow", "trapezoid")
EN_OBJECTS = ("cat", "dog", "car", "cup", "apple", "person", "bird", "chair", "table", "house",
              "tree", "flower", "book", "bottle", "bicycle", "boat", "bus", "train", "horse",
              "sheep", "cow", "banana", "orange", "pizza", "clock", "vase", "umbrella", "bag",
              "shoe", "hat", "phone", "laptop", "television", "bed", "sofa", "window", "door",
              "kite", "ball", "plate")
EN_SIZES = ("small", "large", "big", "tiny", "medium", "huge")
EN_POSITIONS = ("on the left", "on the right", "at the top", "at the bottom", "in the middle",
                "in the top left corner", "in the bottom right corner", "next to the", "above the",
                "below the")
EN_COUNTS = ("a", "one", "two", "three", "four", "five", "several", "many")

ZH_COLOURS = ("红色", "蓝色", "绿色", "黄色", "黑色", "白色", "紫色", "橙色", "灰色", "粉色", "棕色", "金色", "青色")
ZH_PATTERNS = ("条纹", "圆点", "格子", "纯色", "波浪", "斑点", "渐变")
ZH_SHAPES = ("圆形", "正方形", "三角形", "长方形", "星形", "菱形", "椭圆形", "六边形", "十字形", "心形",
             "五角星", "月牙形", "圆环", "箭头", "五边形", "椭圆", "梯形")
ZH_OBJECTS = ("猫", "狗", "汽车", "杯子", "苹果", "人", "鸟", "椅子", "桌子", "房子", "树", "花", "书",
              "瓶子", "自行车", "船", "公交车", "马", "香蕉", "时钟", "雨伞", "帽子", "手机", "电脑")
ZH_SIZES = ("大", "小", "大的", "小的", "中等的", "巨大的", "微小的")
ZH_POSITIONS = ("左边", "右边", "上面", "下面", "中间", "左上角", "右下角", "旁边")
ZH_COUNTS = ("一个", "两个", "三个", "四个", "五个", "几个", "许多")
ZH_FRAMES = ("{}", "一张{}的照片", "图片中有{}", "这是{}", "{}的特写", "一幅{}的图画")


def tiny_corpus(seed: int = 0) -> list[str]:
    """The embedded training corpus (deterministic for a given seed)."""
    rng = random.Random(seed)
    return _english_lines(rng) + _chinese_lines(rng)


def _english_lines(rng: random.Random) -> list[str]:
    templates = TEMPLATES_PATH.read_text(encoding="utf-8").splitlines()
    phrases = [f"{c} {p} {s}" for c, p, s in itertools.product(EN_COLOURS, EN_PATTERNS, EN_SHAPES)]
    phrases += list(EN_OBJECTS)
    lines = [t.format(rng.choice(phrases)) for t in templates for _ in range(8)]
    for _ in range(1500):
        lines.append(
            f"{rng.choice(EN_COUNTS)} {rng.choice(EN_SIZES)} {rng.choice(EN_COLOURS)} "
            f"{rng.choice(EN_PATTERNS)} {rng.choice(EN_SHAPES)} {rng.choice(EN_POSITIONS)} "
            f"{rng.choice(EN_OBJECTS)}"
        )
    return lines


def _chinese_lines(rng: random.Random) -> list[str]:
    lines = [f"{c}{p}{s}" for c, p, s in itertools.product(ZH_COLOURS, ZH_PATTERNS, ZH_SHAPES)]
    for _ in range(1500):
        thing = (
            f"{rng.choice(ZH_COUNTS)}{rng.choice(ZH_SIZES)}{rng.choice(ZH_COLOURS)}"
            f"{rng.choice(ZH_PATTERNS)}{rng.choice(ZH_SHAPES + ZH_OBJECTS)}"
        )
        line = rng.choice(ZH_FRAMES).format(thing)
        if rng.random() < 0.5:
            line = f"{rng.choice(ZH_POSITIONS)}有{line}"
        lines.append(line)
    return lines


def _configure(tok: Tokenizer) -> Tokenizer:
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return tok


def _train_bpe(corpus: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Plain BPE training; returns its vocab (specials first) and merges."""
    tok = _configure(Tokenizer(BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True)))
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=sorted(set(string.printable.strip()) | {"▁"}),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def _with_byte_tokens(vocab: dict[str, int]) -> dict[str, int]:
    """Specials at 0..4, byte tokens at 5..260, learned tokens after, in their trained order."""
    out = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for t in BYTE_TOKENS:
        out[t] = len(out)
    for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        if t not in out:
            out[t] = len(out)
    return out


def build_tiny_tokenizer(vocab_size: int = 1024, seed: int = 0) -> Tokenizer:
    """Train and assemble the tokenizer in memory (see module docstring for its shape)."""
    if vocab_size < len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 1:
        raise ValueError(f"vocab_size must exceed {len(SPECIAL_TOKENS) + len(BYTE_TOKENS)}, got {vocab_size}")
    learned, merges = _train_bpe(tiny_corpus(seed), vocab_size - len(BYTE_TOKENS))
    vocab = _with_byte_tokens(learned)
    tok = _configure(Tokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", pair="$A <eos> $B <eos>", special_tokens=[("<eos>", vocab["<eos>"])]
    )
    return tok


def _special_tokens_map() -> dict[str, str]:
    pad, eos, bos, unk, mask = SPECIAL_TOKENS
    return {"bos_token": bos, "eos_token": eos, "mask_token": mask, "pad_token": pad, "unk_token": unk}


def _tokenizer_config(model_input_names=None) -> dict:
    extra = {} if model_input_names is None else {"model_input_names": list(model_input_names)}
    return {
        **extra,
        "tokenizer_class": TOKENIZER_CLASS,
        **_special_tokens_map(),
        "add_bos_token": False,
        "add_eos_token": True,
        "model_max_length": MODEL_MAX_LENGTH,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def train_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 1024, model_input_names=None) -> int:
    """Train the tiny tokenizer and write tokenizer.json, tokenizer_config.json and
    special_tokens_map.json into ``out_dir``; returns the real vocabulary size. ``model_input_names``
    (e.g. ``("input_ids",)``), when given, goes into tokenizer_config.json (module doc)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer(vocab_size)
    (out_dir / "tokenizer.json").write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")
    _write_json(out_dir / "tokenizer_config.json", _tokenizer_config(model_input_names))
    _write_json(out_dir / "special_tokens_map.json", _special_tokens_map())
    return tok.get_vocab_size(with_added_tokens=True)
