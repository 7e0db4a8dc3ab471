"""TextClassifier: hand-computed values (EN templates, ZH bare), synonyms, cache hits and keys."""
from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from fgclip2_det.openvocab.cache import checkpoint_fingerprint
from fgclip2_det.openvocab.text_classifier import TextClassifier, contains_cjk, load_templates
from fgclip2_det.model import FGCLIP2, FGCLIP2Tokenizer
from fgclip2_det.model.checkpoint import read_state_dict, write_state_dict
from det_helpers import mmdet_scope, official_text_features, official_tokenizer  # noqa: F401  (autouse fixture)


def _encode(model, tok, texts):
    """The official text side: the checkpoint's HF tokenizer, its whole output into the box head
    (tiny_dir's tokenizer returns an attention mask, so pads are masked, as the default 'auto' does)."""
    return official_text_features(model, tok.hf_tokenizer, texts, "box")


def _name_embedding(model, tok, texts):
    return F.normalize(F.normalize(_encode(model, tok, texts), dim=-1).mean(0), dim=-1)


def test_english_templates_and_synonyms_by_hand(tiny_dir, tiny_model, tmp_path):
    tok = FGCLIP2Tokenizer.from_pretrained(tiny_dir)
    templates = load_templates()
    assert len(templates) == 80 and templates[0] == "a bad photo of a {}."
    got = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False, batch_size=50)(["Cat", ["dog", "Puppy"]])
    cat = _name_embedding(tiny_model, tok, [t.format("Cat").lower() for t in templates])
    dog = _name_embedding(tiny_model, tok, [t.format("dog").lower() for t in templates])
    puppy = _name_embedding(tiny_model, tok, [t.format("Puppy").lower() for t in templates])
    want = torch.stack([cat, F.normalize((dog + puppy) / 2, dim=-1)])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert got.norm(dim=-1).sub(1).abs().max() < 1e-6


def test_chinese_bare_not_lowercased(tiny_dir, tiny_model, tmp_path):
    tok = FGCLIP2Tokenizer.from_pretrained(tiny_dir)
    assert contains_cjk("T恤") and not contains_cjk("T-shirt")
    got = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False)(["猫", "T恤"])
    want = F.normalize(_encode(tiny_model, tok, ["猫", "T恤"]), dim=-1)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert not torch.allclose(got[1], F.normalize(_encode(tiny_model, tok, ["t恤"]), dim=-1)[0])
    # language='zh' (BoxClass-CN): names without ideographs are bare and keep their case too
    zh = TextClassifier(tiny_dir, language="zh", cache_dir=tmp_path, progress=False)
    assert zh.name_texts("iPhone") == ["iPhone"]
    bare = TextClassifier(tiny_dir, templates_en=None, cache_dir=tmp_path, progress=False)
    assert bare.name_texts("Red Car") == ["red car"]


def test_attention_mask_option(tiny_dir, tiny_model, tmp_path):
    tok = FGCLIP2Tokenizer.from_pretrained(tiny_dir)
    masked = TextClassifier(tiny_dir, templates_en=None, attention_mask=True, cache_dir=tmp_path, progress=False)
    ids = tok(["red car"], kind="box")
    with torch.no_grad():
        want = tiny_model.encode_text(ids, "box", (ids != tok.pad_token_id).long())
    torch.testing.assert_close(masked(["red car"]), want, atol=1e-6, rtol=0)
    plain = TextClassifier(tiny_dir, templates_en=None, attention_mask=False, cache_dir=tmp_path, progress=False)
    assert not torch.allclose(plain(["red car"]), want, atol=1e-3)
    assert plain.key(plain.class_texts(["red car"])) != masked.key(masked.class_texts(["red car"]))


@pytest.mark.parametrize("variant", ["mask", "no_mask"])
def test_attention_mask_auto_follows_the_tokenizer(variant, tiny_dir, tiny_dir_no_mask, tiny_model, tmp_path):
    """'auto' (the default) = the official evals' text side: the checkpoint's tokenizer output passed
    whole, so pads are masked exactly when the tokenizer returns an attention mask; True / False force
    it; the cache key holds the resolved choice (equal embeddings, equal keys)."""
    checkpoint = tiny_dir if variant == "mask" else tiny_dir_no_mask
    hf = official_tokenizer(checkpoint)
    returns_mask = "attention_mask" in hf(["red car"])
    assert returns_mask == (variant == "mask")
    texts = ["red car", "蓝色的杯子"]
    made = {option: TextClassifier(checkpoint, templates_en=None, attention_mask=option, cache_dir=tmp_path,
                                   progress=False) for option in ("auto", True, False)}
    assert made["auto"].attention_mask == "auto" and made["auto"].uses_attention_mask is returns_mask
    want = F.normalize(official_text_features(tiny_model, hf, texts, "box"), dim=-1)
    torch.testing.assert_close(made["auto"](texts), want, atol=1e-6, rtol=0)
    forced = TextClassifier(checkpoint, templates_en=None, attention_mask=returns_mask, use_cache=False, progress=False)
    torch.testing.assert_close(forced(texts), want, atol=1e-6, rtol=0)
    keys = {option: c.key(c.class_texts(texts)) for option, c in made.items()}
    assert keys["auto"] == keys[returns_mask] != keys[not returns_mask]
    assert not torch.allclose(made[not returns_mask](texts), want, atol=1e-3)
    with pytest.raises(ValueError, match=r"attention_mask must be 'auto', True or False, got 'yes'"):
        TextClassifier(checkpoint, attention_mask="yes")


def test_cache_hit_skips_the_text_encoder(tiny_dir, tmp_path, monkeypatch):
    calls = []
    original = FGCLIP2.encode_text
    monkeypatch.setattr(FGCLIP2, "encode_text", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    first = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False)(["cat", "狗"])
    assert len(calls) == 1 and len(list(tmp_path.glob("*.pt"))) == 1
    calls.clear()
    second = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False)(["cat", "狗"])
    assert calls == [] and torch.equal(first, second)
    TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False, use_cache=False)(["cat", "狗"])
    assert len(calls) == 1
    # an unreadable cache file is reported and recomputed, then overwritten
    next(tmp_path.glob("*.pt")).write_bytes(b"garbage")
    calls.clear()
    third = TextClassifier(tiny_dir, cache_dir=tmp_path, progress=False)(["cat", "狗"])
    assert len(calls) == 1 and torch.equal(third, first)


def test_cache_key_changes_with_weights_templates_names_kind(tiny_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dir, copy)
    base = TextClassifier(copy, cache_dir=tmp_path, progress=False)
    texts = base.class_texts(["cat", "dog"])
    key = base.key(texts)
    assert key == TextClassifier(copy, cache_dir=tmp_path).key(texts)
    assert key != base.key(base.class_texts(["cat", "bird"]))
    assert key != base.key(TextClassifier(copy, templates_en=["a photo of a {}."]).class_texts(["cat", "dog"]))
    assert key != TextClassifier(copy, kind="short").key(texts)

    state = read_state_dict(copy)
    state["boxtext_head.bias"] = state["boxtext_head.bias"] + 1
    write_state_dict(copy, state)
    assert base.key(texts) != key  # rewritten weights



def test_fingerprint_modes(tmp_path):
    """'full' sees a same-size edit in the middle of a weight file even with its mtime restored;
    'fast' (size + mtime + first/last MiB) does not: its documented blind spot."""
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(bytes(range(256)) * (3 << 12))  # 3 MiB
    (tmp_path / "config.json").write_text("{}")
    full_before, fast_before = checkpoint_fingerprint(tmp_path, "full"), checkpoint_fingerprint(tmp_path, "fast")
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert checkpoint_fingerprint(tmp_path, "full") != full_before
    assert checkpoint_fingerprint(tmp_path, "fast") == fast_before
    data[10] ^= 0xFF  # the first MiB holds the safetensors header
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert checkpoint_fingerprint(tmp_path, "fast") != fast_before
    with pytest.raises(ValueError, match="'fast' or 'full'"):
        checkpoint_fingerprint(tmp_path, "quick")


def test_vocabulary_errors(tiny_dir):
    clf = TextClassifier(tiny_dir, use_cache=False, progress=False)
    for bad in ([], "cat", [""], [[]], ["cat", None]):
        with pytest.raises(ValueError, match="non-empty"):
            clf.class_texts(bad)
    with pytest.raises(ValueError, match=r"duplicate class names.*'car' \(class 2\) = 'Car' \(class 0\)"):
        clf.class_texts(["Car", "dog", ["auto", "car"]])
    with pytest.raises(ValueError, match="exactly one"):
        TextClassifier(tiny_dir, templates_en=["no placeholder"])
    with pytest.raises(FileNotFoundError, match="missing"):
        TextClassifier(tiny_dir.parent / "missing", use_cache=False, progress=False)(["cat"])
