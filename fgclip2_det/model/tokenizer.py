"""FG-CLIP 2 text tokenisation: the checkpoint's own tokenizer, padded to the fixed lengths.

The text tower pools the hidden state of the **last** position (official MOD:L743-744), so every
text must be padded to exactly 64 tokens ("short" and "box" captions) or 196 ("long"); the official
code calls the HF tokenizer with ``padding="max_length", truncation=True, max_length=L`` on
lower-cased text. This wrapper reproduces that output exactly (a test compares it with the plain HF
call) but batch-encodes through the fast ``tokenizers`` backend, and counts truncated texts, which
the official code drops silently.

Attention mask: the official evaluations (fgclip2/eval/coco_box_ddp.py, in1k/lvis_box_cls_ddp.py,
in1k/laion_cn_box_cls_ddp.py, fgovd_bbox_roi.py) pass the tokenizer's whole output to
``get_text_features``, so pad tokens are masked exactly when the checkpoint's tokenizer returns an
``attention_mask`` (its ``model_input_names``); the official training passes none. :meth:`encode`
returns what the HF call returns, and :func:`resolve_attention_mask` turns the evaluation option
('auto' / True / False) into that choice.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tokenizers import Tokenizer

__all__ = ["FGCLIP2Tokenizer", "TOKENIZER_FILES", "ATTENTION_MASK_CHOICES", "check_attention_mask_option",
           "resolve_attention_mask", "tokenizer_returns_attention_mask"]

logger = logging.getLogger("fgclip2_det")

#: Tokenizer files a checkpoint directory may ship (tokenizer.json is the minimum; tokenizer.model is
#: the SentencePiece original some releases add). Export, conversion and the embedding cache copy or
#: hash exactly these.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")
_FALLBACK_PAD = "<pad>"
#: What transformers' fast tokenizer built from a tokenizer.json alone returns (the
#: ``model_input_names`` of ``PreTrainedTokenizerBase`` / ``TokenizersBackend``): the
#: tokenizer.json-only path assumes it, as ``AutoTokenizer`` on the same folder would.
DEFAULT_MODEL_INPUT_NAMES = ("input_ids", "attention_mask")
#: The evaluation option for the text attention mask ('auto', True, False; see
#: :func:`resolve_attention_mask`) as command-line tools spell it (``--text-attention-mask auto|on|off``).
ATTENTION_MASK_CHOICES = {"auto": "auto", "on": True, "off": False}


class FGCLIP2Tokenizer:
    """Callable tokenizer: ``tok(texts, kind) -> LongTensor (B, L)``.

    Build it with :meth:`from_pretrained`. ``kind`` is "short" / "box" (``short_len``, 64) or
    "long" (``long_len``, 196). ``lowercase`` (default True, like the official training and English
    evals; the Chinese evals do not lower-case) applies Python ``str.lower`` before tokenising; a
    per-call ``lowercase=`` overrides it.
    """

    def __init__(
        self,
        backend: Tokenizer,
        pad_token_id: int,
        pad_token: str,
        padding_side: str = "right",
        truncation_side: str = "right",
        lowercase: bool = True,
        short_len: int = 64,
        long_len: int = 196,
        hf_tokenizer=None,
        model_input_names: Sequence[str] = DEFAULT_MODEL_INPUT_NAMES,
    ):
        for name, value in (("short_len", short_len), ("long_len", long_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, value in (("padding_side", padding_side), ("truncation_side", truncation_side)):
            if value not in ("left", "right"):
                raise ValueError(f"{name} must be 'left' or 'right', got {value!r}")
        self.lowercase = bool(lowercase)
        self.pad_token_id = int(pad_token_id)
        self.pad_token = pad_token
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.lengths = {"short": short_len, "box": short_len, "long": long_len}
        self.hf_tokenizer = hf_tokenizer  # kept for reference / decoding special cases
        self.model_input_names = tuple(model_input_names)
        self._raw = backend
        self._backends: dict[int, Tokenizer] = {}
        self.num_truncated = 0
        self._warned = False

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        lowercase: bool = True,
        short_len: int = 64,
        long_len: int = 196,
    ) -> "FGCLIP2Tokenizer":
        """Load the tokenizer files shipped with a checkpoint directory (never downloads).

        With ``tokenizer_config.json`` present, ``transformers.AutoTokenizer`` builds the tokenizer,
        so the checkpoint's own special tokens, padding side and post-processor apply, as in the
        official code. Otherwise ``tokenizer.json`` is read with ``tokenizers`` alone: pad token from
        its padding settings or ``<pad>``, right padding (SigLIP 2's Gemma files pad right), and
        ``model_input_names`` = ``("input_ids", "attention_mask")``, what transformers' fast tokenizer
        built from that file alone returns.
        """
        directory = Path(directory)
        _check_directory(directory)
        kwargs = dict(lowercase=lowercase, short_len=short_len, long_len=long_len)
        if (directory / "tokenizer_config.json").is_file():
            return cls._from_transformers(directory, **kwargs)
        return cls._from_tokenizer_json(directory / "tokenizer.json", **kwargs)

    @classmethod
    def _from_transformers(cls, directory: Path, **kwargs) -> "FGCLIP2Tokenizer":
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        # AutoTokenizer also reads the model's config.json, whose model_type ("fgclip2") transformers
        # does not know; its warning about that is noise here, the tokenizer files decide.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
        if hf.pad_token_id is None:
            raise ValueError(f"tokenizer in {directory} defines no pad token; FG-CLIP 2 pads to a fixed length")
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(
                f"tokenizer in {directory} ({type(hf).__name__}) has no fast backend; "
                "ship a tokenizer.json with the checkpoint"
            )
        return cls(
            Tokenizer.from_str(backend.to_str()),
            pad_token_id=hf.pad_token_id,
            pad_token=hf.pad_token,
            padding_side=hf.padding_side,
            truncation_side=hf.truncation_side,
            hf_tokenizer=hf,
            model_input_names=hf.model_input_names,
            **kwargs,
        )

    @classmethod
    def _from_tokenizer_json(cls, path: Path, **kwargs) -> "FGCLIP2Tokenizer":
        backend = Tokenizer.from_file(str(path))
        padding = backend.padding
        if padding is not None:
            pad_id, pad_token, side = padding["pad_id"], padding["pad_token"], padding["direction"]
        else:
            pad_id, pad_token, side = backend.token_to_id(_FALLBACK_PAD), _FALLBACK_PAD, "right"
            if pad_id is None:
                raise ValueError(f"{path} has no padding settings and no {_FALLBACK_PAD!r} token")
        return cls(backend, pad_token_id=pad_id, pad_token=pad_token, padding_side=side, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def vocab_size(self) -> int:
        """Number of token ids (added tokens included): rows the embedding table must have."""
        return self._raw.get_vocab_size(with_added_tokens=True)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.lengths)

    @property
    def returns_attention_mask(self) -> bool:
        """Whether the checkpoint's tokenizer returns an ``attention_mask`` (it is in its
        ``model_input_names``), i.e. whether the official evaluations mask pad tokens."""
        return "attention_mask" in self.model_input_names

    # ------------------------------------------------------------------ encoding

    def __call__(
        self, texts: str | Sequence[str], kind: str = "short", lowercase: bool | None = None
    ) -> torch.Tensor:
        """Token ids (B, L), padded with ``pad_token_id`` to exactly L and truncated to L."""
        encodings, length = self._encode(texts, kind, lowercase)
        return _as_tensor([enc.ids for enc in encodings], length)

    def encode(
        self, texts: str | Sequence[str], kind: str = "short", lowercase: bool | None = None,
        attention_mask: bool | str = "auto",
    ) -> dict[str, torch.Tensor]:
        """``{"input_ids": (B, L)}``, plus ``"attention_mask"`` (B, L; 1 = real token, 0 = pad) when
        ``attention_mask`` resolves to True (:func:`resolve_attention_mask`: 'auto' = exactly when
        the checkpoint's tokenizer returns one). With 'auto' this is what the official evaluations
        get from ``tokenizer(texts, padding="max_length", max_length=L, truncation=True)``.
        """
        with_mask = resolve_attention_mask(attention_mask, self)
        encodings, length = self._encode(texts, kind, lowercase)
        out = {"input_ids": _as_tensor([enc.ids for enc in encodings], length)}
        if with_mask:
            out["attention_mask"] = _as_tensor([enc.attention_mask for enc in encodings], length)
        return out

    def _encode(self, texts, kind: str, lowercase: bool | None):
        """The backend's encodings of ``texts`` (lower-cased per the setting), and L."""
        length = self._length(kind)
        batch = _as_text_list(texts)
        if (self.lowercase if lowercase is None else lowercase):
            batch = [t.lower() for t in batch]
        if not batch:
            return [], length
        encodings = self._backend(length).encode_batch(batch)
        truncated = [i for i, enc in enumerate(encodings) if enc.overflowing]
        if truncated:
            self._record_truncation(len(truncated), batch[truncated[0]], kind, length)
        return encodings, length

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        """Text of one id sequence (pads and other special tokens dropped by default)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self._raw.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def _length(self, kind: str) -> int:
        if kind not in self.lengths:
            raise ValueError(f"unknown kind {kind!r}; valid kinds: {', '.join(self.lengths)}")
        return self.lengths[kind]

    def _backend(self, length: int) -> Tokenizer:
        """A copy of the raw backend with truncation + max-length padding, cached per length."""
        if length not in self._backends:
            tok = Tokenizer.from_str(self._raw.to_str())
            tok.enable_truncation(max_length=length, stride=0, direction=self.truncation_side)
            tok.enable_padding(
                direction=self.padding_side,
                pad_id=self.pad_token_id,
                pad_token=self.pad_token,
                length=length,
            )
            self._backends[length] = tok
        return self._backends[length]

    def _record_truncation(self, count: int, example: str, kind: str, length: int) -> None:
        self.num_truncated += count
        if self._warned:
            return
        self._warned = True
        logger.warning(
            "FGCLIP2Tokenizer: %d text(s) truncated so far (this batch: kind=%r, max %d tokens), e.g. %r. "
            "Further truncations are counted in .num_truncated without warning.",
            self.num_truncated,
            kind,
            length,
            example[:200],
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, lengths={self.lengths}, "
            f"pad_token_id={self.pad_token_id}, padding_side={self.padding_side!r}, lowercase={self.lowercase})"
        )


def check_attention_mask_option(value, what: str = "attention_mask") -> bool | str:
    """``value`` if it is 'auto', True or False; ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or (isinstance(value, str) and value == "auto"):
        return value
    raise ValueError(f"{what} must be 'auto', True or False, got {value!r}")


def resolve_attention_mask(option: bool | str, tokenizer: FGCLIP2Tokenizer | str | Path) -> bool:
    """Whether evaluation text encoding passes an attention mask: 'auto' = exactly when the
    checkpoint's tokenizer returns one (:attr:`FGCLIP2Tokenizer.returns_attention_mask`; ``tokenizer``
    is the tokenizer or the checkpoint folder), as the official evaluations do; True / False force
    it either way."""
    check_attention_mask_option(option)
    if option != "auto":
        return option
    if isinstance(tokenizer, FGCLIP2Tokenizer):
        return tokenizer.returns_attention_mask
    return tokenizer_returns_attention_mask(tokenizer)


_RETURNS_MASK: dict[tuple, bool] = {}


def tokenizer_returns_attention_mask(directory: str | Path) -> bool:
    """:attr:`FGCLIP2Tokenizer.returns_attention_mask` of a checkpoint folder's tokenizer, remembered
    per process until its tokenizer files change, so that cache look-ups do not build the tokenizer
    (with transformers, for a 256k-token vocabulary) every time."""
    directory = Path(directory).resolve()
    stamp = tuple((name, (directory / name).stat().st_mtime_ns, (directory / name).stat().st_size)
                  for name in TOKENIZER_FILES if (directory / name).is_file())
    key = (str(directory), stamp)
    if key not in _RETURNS_MASK:
        _RETURNS_MASK[key] = FGCLIP2Tokenizer.from_pretrained(directory).returns_attention_mask
    return _RETURNS_MASK[key]


def _as_tensor(rows: list[list[int]], length: int) -> torch.Tensor:
    if not rows:
        return torch.zeros((0, length), dtype=torch.long)
    # numpy first: ~3x faster than torch.tensor on 100k nested lists
    return torch.from_numpy(np.array(rows, dtype=np.int64))


def _check_directory(directory: Path) -> None:
    if not directory.is_dir():
        raise FileNotFoundError(
            f"tokenizer directory not found: {directory} (expected a directory with {', '.join(TOKENIZER_FILES)})"
        )
    if not any((directory / name).is_file() for name in TOKENIZER_FILES[:2]):
        present = sorted(p.name for p in directory.iterdir())
        raise FileNotFoundError(
            f"no tokenizer files in {directory}: expected tokenizer.json (+ tokenizer_config.json, "
            f"special_tokens_map.json), found: {present}"
        )


def _as_text_list(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return list(texts)
