"""FGCLIP2Tokenizer on the tiny bilingual tokenizer: fixed lengths, exact parity with the HF call."""
import json
import logging
import shutil
import subprocess
import sys

import pytest
import torch

from fgclip2_det.model.tiny_tokenizer import BYTE_TOKENS, SPECIAL_TOKENS, train_tiny_tokenizer
from fgclip2_det.model.tokenizer import FGCLIP2Tokenizer

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PAD, EOS, BOS, UNK = 0, 1, 2, 3

LONG_EN = " ".join(["a large red striped circle on the left next to the blue dotted square"] * 12)
LONG_ZH = "左边有一个大的红色条纹圆形和右边两个小的蓝色圆点正方形" * 20
MIXED = [
    "A Red Striped Circle on the left",
    "a photo of a dog.",
    "红色条纹圆形",
    "左边有两个蓝色圆点正方形",
    "a photo of a 红色 cat, 🐱 ☃ naïve café!",
    "",
    "   spaced    out   ",
    LONG_EN,
    LONG_ZH,
]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_tok")
    train_tiny_tokenizer(d)
    return d


@pytest.fixture()
def tok(tok_dir):
    return FGCLIP2Tokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="module")
def hf(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)


def _hf_ids(hf, texts, length):
    out = hf(texts, padding="max_length", truncation=True, max_length=length)
    return torch.tensor(out["input_ids"], dtype=torch.long)


# ----------------------------------------------------------------------------- the tiny tokenizer


def test_tiny_tokenizer_layout(tok_dir, tok):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert [raw.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert [raw.token_to_id(t) for t in BYTE_TOKENS] == list(range(5, 261))
    assert tok.vocab_size == raw.get_vocab_size() == 1024
    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert cfg["padding_side"] == "right" and cfg["model_max_length"] == 196
    assert json.loads((tok_dir / "special_tokens_map.json").read_text())["pad_token"] == "<pad>"


def test_train_returns_real_vocab_size(tmp_path):
    assert train_tiny_tokenizer(tmp_path / "a", vocab_size=600) == 600


def test_training_is_deterministic(tmp_path, tok_dir):
    train_tiny_tokenizer(tmp_path / "again")
    code = "import sys; from fgclip2_det.model.tiny_tokenizer import train_tiny_tokenizer; train_tiny_tokenizer(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "other_process")], check=True)
    for name in FILES:
        ref = (tok_dir / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == ref, name
        assert (tmp_path / "other_process" / name).read_bytes() == ref, name


# ----------------------------------------------------------------------------- shapes / padding


def test_shapes(tok):
    assert tok(["a red circle", "两个蓝色方形"], kind="short").shape == (2, 64)
    assert tok(["a red circle", "两个蓝色方形"], kind="box").shape == (2, 64)
    assert tok(["a red circle"], kind="long").shape == (1, 196)
    assert tok("a red circle").shape == (1, 64)
    assert tok([], kind="long").shape == (0, 196)
    assert tok(("a", "b")).dtype == torch.long
    assert tok.lengths == {"short": 64, "box": 64, "long": 196}


def test_pad_id_and_side(tok):
    ids = tok("a red striped circle")[0]
    n = int((ids != PAD).sum())
    assert tok.pad_token_id == PAD and tok.padding_side == "right"
    assert 3 <= n < 64
    assert (ids[:n] != PAD).all() and (ids[n:] == PAD).all()
    assert ids[n - 1].item() == EOS and BOS not in ids.tolist()


@pytest.mark.parametrize("kind, length", [("short", 64), ("box", 64), ("long", 196)])
def test_equals_plain_hf_call(tok, hf, kind, length):
    lowered = [t.lower() for t in MIXED]
    assert torch.equal(tok(MIXED, kind=kind), _hf_ids(hf, lowered, length))
    assert torch.equal(tok(MIXED, kind=kind, lowercase=False), _hf_ids(hf, MIXED, length))


def test_honours_checkpoint_padding_side(tok_dir, tmp_path):
    from transformers import AutoTokenizer

    d = tmp_path / "left"
    shutil.copytree(tok_dir, d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["padding_side"] = "left"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    left = FGCLIP2Tokenizer.from_pretrained(d)
    ids = left("a red circle")[0]
    assert left.padding_side == "left" and ids[0].item() == PAD and ids[-1].item() == EOS
    hf_left = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    assert torch.equal(left(MIXED), _hf_ids(hf_left, [t.lower() for t in MIXED], 64))


# ----------------------------------------------------------------------------- text handling


def test_lowercase_on_and_off(tok_dir):
    on = FGCLIP2Tokenizer.from_pretrained(tok_dir)
    off = FGCLIP2Tokenizer.from_pretrained(tok_dir, lowercase=False)
    assert torch.equal(on("A RED Circle"), on("a red circle"))
    assert not torch.equal(off("A RED Circle"), off("a red circle"))
    assert torch.equal(off("A RED Circle", lowercase=True), on("a red circle"))
    assert not torch.equal(on("A RED Circle", lowercase=False), on("a red circle"))


def test_chinese_round_trip_without_unk(tok):
    for text in ("红色条纹圆形", "左边有两个蓝色圆点正方形", "鹦鹉在树上 🦜"):
        ids = tok(text, lowercase=False)[0]
        assert UNK not in ids.tolist()
        assert tok.decode(ids) == text
    # the trained vocabulary actually covers the corpus words (not only byte fallback)
    ids = tok("红色条纹圆形")[0]
    assert int((ids != PAD).sum()) <= 6


def test_every_synthetic_world_word_is_learned(tok_dir):
    """Each English kind, colour, pattern and size of the synthetic world is one token, and no Chinese
    one falls back to bytes: a word split into letters or bytes is far harder for a tiny text tower."""
    from tokenizers import Tokenizer
    from fgclip2_det.datasets.synthetic.vocab import COLOURS, KINDS, PATTERNS, SIZES
    raw = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    table = [*KINDS.values(), *COLOURS.values(), *PATTERNS.values(), *SIZES.values()]
    for en, zh, *_ in table:
        assert raw.encode(f"a {en}").tokens == ["a", f"▁{en}", "<eos>"], en
        assert not [t for t in raw.encode(zh).tokens if t.startswith("<0x")], zh


def test_truncation_counted_and_warned_once(tok, hf, caplog):
    caplog.set_level(logging.WARNING, logger="fgclip2_det")
    ids = tok([LONG_EN, "a cat", LONG_ZH], kind="short")
    assert tok.num_truncated == 2
    assert ids.shape == (3, 64) and (ids[0] != PAD).all() and (ids[2] != PAD).all()
    assert torch.equal(ids, _hf_ids(hf, [LONG_EN, "a cat", LONG_ZH], 64))
    assert ids[0, -1].item() == EOS  # HF keeps the eos when truncating
    tok([" ".join([LONG_EN] * 4)], kind="long")
    tok(["short text"], kind="long")
    assert tok.num_truncated == 3
    records = [r for r in caplog.records if r.name == "fgclip2_det"]
    assert len(records) == 1
    assert "2 text(s) truncated" in records[0].getMessage()


def test_long_kind_fits_more(tok):
    ids = tok(LONG_EN, kind="long")[0]
    assert tok.num_truncated == 0 and ids.shape == (196,) and (ids == PAD).any()


def test_bad_inputs(tok):
    with pytest.raises(ValueError, match="short, box, long"):
        tok("a cat", kind="medium")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok(["a cat", 3])
    with pytest.raises(TypeError):
        tok(42)


# ----------------------------------------------------------------------------- loading


def test_loads_from_tokenizer_json_only(tok_dir, tok, tmp_path):
    d = tmp_path / "json_only"
    d.mkdir()
    shutil.copy(tok_dir / "tokenizer.json", d / "tokenizer.json")
    bare = FGCLIP2Tokenizer.from_pretrained(d)
    assert bare.hf_tokenizer is None
    assert bare.pad_token_id == PAD and bare.padding_side == "right"
    for kind in ("short", "long"):
        assert torch.equal(bare(MIXED, kind=kind), tok(MIXED, kind=kind))


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        FGCLIP2Tokenizer.from_pretrained(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"tokenizer.json.*config.json"):
        FGCLIP2Tokenizer.from_pretrained(tmp_path / "empty")


def test_custom_lengths(tok_dir):
    t = FGCLIP2Tokenizer.from_pretrained(tok_dir, short_len=8, long_len=12)
    assert t("a red circle", kind="box").shape == (1, 8)
    assert t("a red circle", kind="long").shape == (1, 12)
    with pytest.raises(ValueError, match="short_len"):
        FGCLIP2Tokenizer.from_pretrained(tok_dir, short_len=0)


# ----------------------------------------------------------------------------- attention mask


def _hf_output(hf, texts, length):
    return hf(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")


def test_encode_returns_what_the_hf_call_returns(tok_dir, tmp_path, hf):
    """``encode`` with 'auto' = the official call's output, key for key: with the attention mask when
    the checkpoint's tokenizer returns one, without it when its ``model_input_names`` say so."""
    from fgclip2_det.model.tokenizer import resolve_attention_mask

    from transformers import AutoTokenizer

    no_mask_dir = tmp_path / "no_mask"
    shutil.copytree(tok_dir, no_mask_dir)
    cfg = json.loads((no_mask_dir / "tokenizer_config.json").read_text())
    (no_mask_dir / "tokenizer_config.json").write_text(json.dumps({**cfg, "model_input_names": ["input_ids"]}))
    hf_no_mask = AutoTokenizer.from_pretrained(str(no_mask_dir), local_files_only=True)
    lowered = [t.lower() for t in MIXED]
    for directory, reference, returns_mask in ((tok_dir, hf, True), (no_mask_dir, hf_no_mask, False)):
        ours = FGCLIP2Tokenizer.from_pretrained(directory)
        assert ours.returns_attention_mask is returns_mask
        assert ours.model_input_names == tuple(reference.model_input_names)
        for kind, length in (("box", 64), ("long", 196)):
            want = _hf_output(reference, lowered, length)
            got = ours.encode(MIXED, kind=kind)
            assert sorted(got) == sorted(want.keys())
            for key in got:
                assert torch.equal(got[key], want[key]), (directory, kind, key)
        # forced either way; ids never change
        forced = {option: ours.encode(MIXED, kind="box", attention_mask=option) for option in (True, False)}
        assert "attention_mask" in forced[True] and "attention_mask" not in forced[False]
        assert torch.equal(forced[True]["input_ids"], forced[False]["input_ids"])
        assert torch.equal(forced[True]["attention_mask"], _hf_output(hf, lowered, 64)["attention_mask"])
        assert resolve_attention_mask("auto", ours) is returns_mask
        assert resolve_attention_mask("auto", directory) is returns_mask
        assert resolve_attention_mask(True, ours) is True and resolve_attention_mask(False, directory) is False
    # the mask marks what the tokenizer produced, not what equals the pad id: a literal "<pad>" in a
    # text is a real token (mask 1), as in the HF call
    text = ["a <pad> cat"]
    got, want = FGCLIP2Tokenizer.from_pretrained(tok_dir).encode(text, kind="box"), _hf_output(hf, text, 64)
    assert torch.equal(got["attention_mask"], want["attention_mask"]) and torch.equal(got["input_ids"], want["input_ids"])
    assert 0 in got["input_ids"][0, :3].tolist() and got["attention_mask"][0, :4].tolist() == [1, 1, 1, 1]
    assert ours.encode([], kind="box", attention_mask=True)["attention_mask"].shape == (0, 64)


def test_tokenizer_json_only_returns_an_attention_mask(tok_dir, tmp_path):
    """Without tokenizer_config.json the tokenizer is read with ``tokenizers`` alone; it then returns
    what transformers' fast tokenizer built from that file returns: ids and the attention mask."""
    from transformers import AutoTokenizer

    d = tmp_path / "json_only"
    d.mkdir()
    shutil.copy(tok_dir / "tokenizer.json", d / "tokenizer.json")
    bare = FGCLIP2Tokenizer.from_pretrained(d)
    assert bare.hf_tokenizer is None and bare.returns_attention_mask
    assert bare.model_input_names == tuple(AutoTokenizer.from_pretrained(str(d), local_files_only=True).model_input_names)
    out = bare.encode(["a red circle"], kind="box")
    assert sorted(out) == ["attention_mask", "input_ids"]
    assert torch.equal(out["attention_mask"], (out["input_ids"] != PAD).long())


def test_attention_mask_option_is_checked(tok):
    from fgclip2_det.model.tokenizer import check_attention_mask_option, resolve_attention_mask

    assert [check_attention_mask_option(v) for v in ("auto", True, False)] == ["auto", True, False]
    for bad in ("yes", 1, None, "Auto"):
        with pytest.raises(ValueError, match=r"text_attention_mask must be 'auto', True or False"):
            check_attention_mask_option(bad, "text_attention_mask")
        with pytest.raises(ValueError, match=r"attention_mask must be 'auto', True or False"):
            resolve_attention_mask(bad, tok)
    with pytest.raises(ValueError, match="attention_mask must be"):
        tok.encode(["a"], attention_mask="no")


def test_tiny_checkpoint_variants(tiny_dir, tiny_dir_no_mask):
    """The test checkpoints: tiny_dir's tokenizer returns an attention mask, tiny_dir_no_mask's none;
    same weights and vocabulary."""
    from transformers import AutoTokenizer

    for directory, returns_mask in ((tiny_dir, True), (tiny_dir_no_mask, False)):
        hf = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        assert ("attention_mask" in hf(["a cat"])) is returns_mask
        assert FGCLIP2Tokenizer.from_pretrained(directory).returns_attention_mask is returns_mask
    for name in ("model.safetensors", "tokenizer.json"):
        assert (tiny_dir / name).read_bytes() == (tiny_dir_no_mask / name).read_bytes(), name
