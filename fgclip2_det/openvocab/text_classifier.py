"""Class-name embeddings for region classification (the text side of the official box evaluations,
``zeroshot_classifier`` in fgclip2/eval/coco_box_ddp.py).

A vocabulary is a list of classes; a class is a name or a list of synonyms. Per name:

* English (no CJK character; or ``language='en'``): the 80 prompt templates of
  ``fgclip2_det/data/prompt_templates_en.txt`` formatted with the name and lower-cased (official
  COCO / LVIS box eval);
* Chinese (a CJK ideograph in the name; or ``language='zh'``): the bare name, not lower-cased
  (official BoxClass-CN). BoxClass-CN configs set ``language='zh'`` so that its few names without
  ideographs are treated the same way.

Embedding of a name = L2(mean over its texts of L2(encode_text(text, kind='box'))); of a class =
L2(mean over its names). Results are cached on disk (:mod:`.cache`), so the text tower is
loaded only on a cache miss, and freed afterwards.

``name_style='underscore_to_space'`` prompts LVIS-style names as words ("baby_buggy" -> "baby buggy").

Texts are tokenised as the official evaluations do (64 tokens, ``padding="max_length"``) and, by
default (``attention_mask='auto'``), encoded with the attention mask exactly when the checkpoint's
tokenizer returns one, as those scripts pass the tokenizer's whole output to ``get_text_features``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..model import FGCLIP2Tokenizer
from ..model.tokenizer import check_attention_mask_option, resolve_attention_mask
from .cache import EmbeddingCache, cache_key, checkpoint_fingerprint, tokenizer_fingerprint
from .towers import load_fgclip2_tower
from .vocabulary import Vocabulary, contains_cjk, normalize_vocabulary

TEMPLATE_FILE = Path(__file__).resolve().parents[1] / "data" / "prompt_templates_en.txt"


def load_templates(path: str | Path = TEMPLATE_FILE) -> tuple[str, ...]:
    """Templates, one per line, each with exactly one ``{}``."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    templates = tuple(line for line in lines if line)
    bad = [t for t in templates if t.count("{}") != 1]
    if not templates or bad:
        raise ValueError(f"{path}: every template needs exactly one '{{}}'; bad: {bad[:3]}")
    return templates


class TextClassifier:
    """Callable: ``TextClassifier(checkpoint)(classes) -> (C, D)`` L2-normalised class embeddings.

    Args:
        checkpoint: FG-CLIP 2 checkpoint directory (text tower + tokenizer files).
        language: 'auto' (per name, CJK -> Chinese rule), 'en' or 'zh' for every name.
        templates_en: 'default' (the 80 official templates), or a list of templates with '{}';
            None / [] = the bare name.
        lowercase_en: lower-case English texts (official: yes).
        name_style: 'as_is', or 'underscore_to_space' for names written with underscores (LVIS).
        kind: text head, 'box' for region features.
        cache_dir: embedding cache folder (None -> ``default_cache_dir()``); use_cache=False skips it.
        fingerprint: checkpoint fingerprint mode for the cache key, 'fast' or 'full' (text_cache).
        batch_size: texts per encoder call; progress: show a tqdm bar while encoding.
        device: where the text tower runs on a cache miss.
        attention_mask: mask pad tokens in the text encoder. 'auto' (default): exactly when the
            checkpoint's tokenizer returns an attention mask, as the official evaluations (they pass
            the tokenizer's whole output); True / False force it either way (the official training
            passes none). The cache key holds the resolved choice (README, "Where this
            implementation decides").
    """

    def __init__(self, checkpoint: str | Path, language: str = "auto",
                 templates_en: str | Sequence[str] | None = "default", lowercase_en: bool = True,
                 kind: str = "box", cache_dir: str | Path | None = None, use_cache: bool = True,
                 fingerprint: str = "fast", batch_size: int = 256, progress: bool = True,
                 device: str | torch.device = "cpu", attention_mask: bool | str = "auto", name_style: str = "as_is"):
        if name_style not in ("as_is", "underscore_to_space"):
            raise ValueError(f"name_style must be 'as_is' or 'underscore_to_space', got {name_style!r}")
        self.name_style = name_style
        if language not in ("auto", "en", "zh"):
            raise ValueError(f"language must be 'auto', 'en' or 'zh', got {language!r}")
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.checkpoint = Path(checkpoint)
        self.language = language
        if templates_en == "default":
            self.templates_en = load_templates()
        else:
            self.templates_en = tuple(templates_en or ("{}",))
            bad = [t for t in self.templates_en if t.count("{}") != 1]
            if bad:
                raise ValueError(f"templates_en: every template needs exactly one '{{}}'; bad: {bad[:3]}")
        self.lowercase_en = lowercase_en
        self.kind = kind
        self.cache = EmbeddingCache(cache_dir) if use_cache else None
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.progress = progress
        self.device = torch.device(device)
        self.attention_mask = check_attention_mask_option(attention_mask)

    # ------------------------------------------------------------------------------ texts
    def name_texts(self, name: str) -> list[str]:
        """The texts whose embeddings are averaged for one name."""
        if self.name_style == "underscore_to_space":
            name = name.replace("_", " ")
        chinese = self.language == "zh" or (self.language == "auto" and contains_cjk(name))
        if chinese:
            return [name]
        texts = [t.replace("{}", name) for t in self.templates_en]
        return [t.lower() for t in texts] if self.lowercase_en else texts

    def class_texts(self, classes: Vocabulary) -> list[list[list[str]]]:
        """Per class, per name, its texts. Two names with the same texts (e.g. 'Car' and 'car' once
        lower-cased) would be indistinguishable: that is an error naming them."""
        vocab = normalize_vocabulary(classes)
        seen: dict[tuple[str, ...], tuple[int, str]] = {}
        duplicates = []
        out = []
        for c, names in enumerate(vocab):
            per_name = []
            for name in names:
                texts = self.name_texts(name)
                key = tuple(texts)
                if key in seen:
                    duplicates.append(f"{name!r} (class {c}) = {seen[key][1]!r} (class {seen[key][0]})")
                else:
                    seen[key] = (c, name)
                per_name.append(texts)
            out.append(per_name)
        if duplicates:
            raise ValueError("duplicate class names (they would get identical embeddings): "
                             + "; ".join(duplicates[:10]) + (" ..." if len(duplicates) > 10 else ""))
        return out

    # ------------------------------------------------------------------------------ embeddings
    @property
    def uses_attention_mask(self) -> bool:
        """The resolved ``attention_mask`` option: whether pad tokens are masked."""
        return resolve_attention_mask(self.attention_mask, self.checkpoint)

    def key(self, class_texts: list[list[list[str]]]) -> str:
        return cache_key(checkpoint=checkpoint_fingerprint(self.checkpoint, self.fingerprint),
                         tokenizer=tokenizer_fingerprint(self.checkpoint), kind=self.kind,
                         attention_mask=self.uses_attention_mask, texts=class_texts)

    def __call__(self, classes: Vocabulary) -> torch.Tensor:
        class_texts = self.class_texts(classes)
        key = None
        if self.cache is not None:
            key = self.key(class_texts)
            cached = self.cache.load(key)
            if cached is not None and cached.shape[0] == len(class_texts):
                return cached
        embeddings = self.compute(class_texts)
        if self.cache is not None:
            self.cache.save(key, embeddings, {"checkpoint": str(self.checkpoint), "kind": self.kind,
                                              "attention_mask": self.uses_attention_mask,
                                              "classes": [[n[0] for n in c] for c in class_texts]})
        return embeddings

    def compute(self, class_texts: list[list[list[str]]]) -> torch.Tensor:
        """Encode every text, then average per name and per class (module doc)."""
        flat = [t for per_class in class_texts for texts in per_class for t in texts]
        text_embeds = self.encode_texts(flat)
        rows, start = [], 0
        for per_class in class_texts:
            names = []
            for texts in per_class:
                names.append(F.normalize(text_embeds[start:start + len(texts)].mean(0), dim=-1))
                start += len(texts)
            rows.append(F.normalize(torch.stack(names).mean(0), dim=-1))
        return torch.stack(rows)

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """(N, D) L2-normalised embeddings, in batches, with a progress bar; loads the text tower
        for the duration of the call only."""
        model = load_fgclip2_tower(self.checkpoint, "text", "text classifier checkpoint").to(self.device)
        tokenizer = FGCLIP2Tokenizer.from_pretrained(self.checkpoint)
        with_mask = resolve_attention_mask(self.attention_mask, tokenizer)
        out = []
        with torch.inference_mode(), tqdm(total=len(texts), desc="FG-CLIP 2 class embeddings", unit="text",
                                          disable=not self.progress) as bar:
            for i in range(0, len(texts), self.batch_size):
                chunk = texts[i:i + self.batch_size]
                tokens = tokenizer.encode(chunk, kind=self.kind, lowercase=False, attention_mask=with_mask)
                mask = tokens.get("attention_mask")
                out.append(model.encode_text(tokens["input_ids"].to(self.device), self.kind,
                                             None if mask is None else mask.to(self.device)).float().cpu())
                bar.update(len(chunk))
        return torch.cat(out)
