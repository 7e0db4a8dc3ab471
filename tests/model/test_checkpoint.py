"""Checkpoint I/O (official layout, strict) and the SigLIP 2 -> FG-CLIP 2 converter."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from fgclip2_det.model import (FGCLIP2, CheckpointError, FGCLIP2Config, siglip2_to_fgclip2_config,
                               siglip2_to_fgclip2_state_dict)
from fgclip2_det.model.checkpoint import stretch_position_embedding


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_from_pretrained_is_float32_eval(tiny_model):
    assert not tiny_model.training
    assert all(p.dtype == torch.float32 for p in tiny_model.parameters())


def test_round_trip_is_exact(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "a")
    again = FGCLIP2.from_pretrained(tmp_path / "a")
    assert_same_state(tiny_model, again)
    assert json.loads((tmp_path / "a" / "config.json").read_text()) == tiny_model.config.to_dict()


def test_sharded_round_trip(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "s", max_shard_bytes=200_000)
    shards = sorted(p.name for p in (tmp_path / "s").glob("model-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "s" / "model.safetensors.index.json").is_file()
    assert_same_state(tiny_model, FGCLIP2.from_pretrained(tmp_path / "s"))


def test_unknown_config_keys_survive_round_trip(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "c")
    cfg = json.loads((d / "config.json").read_text())
    cfg["torch_dtype"] = "bfloat16"
    cfg["text_config"]["pad_token_id"] = 0
    (d / "config.json").write_text(json.dumps(cfg))
    FGCLIP2.from_pretrained(d).save_pretrained(tmp_path / "out")
    out = json.loads((tmp_path / "out" / "config.json").read_text())
    assert out["torch_dtype"] == "bfloat16" and out["text_config"]["pad_token_id"] == 0


def test_bf16_checkpoint_loads_as_float32(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "bf16")
    state = {k: v.to(torch.bfloat16) for k, v in load_file(str(d / "model.safetensors")).items()}
    save_file(state, str(d / "model.safetensors"))
    model = FGCLIP2.from_pretrained(d)
    assert model.logit_scale.dtype == torch.float32
    assert torch.equal(model.logit_bias, state["logit_bias"].float())


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FGCLIP2.from_pretrained(tmp_path / "nowhere")


def test_missing_weights_file(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "nofile")
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        FGCLIP2.from_pretrained(d)


def test_missing_unexpected_and_mismatched_keys_listed_together(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "keys")
    state = load_file(str(d / "model.safetensors"))
    del state["boxtext_head.bias"]
    state["logit_scale_finegraind"] = torch.zeros(())
    state["vision_model.post_layernorm.weight"] = torch.zeros(65)
    save_file(state, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        FGCLIP2.from_pretrained(d)
    msg = str(err.value)
    assert "1 missing key(s): boxtext_head.bias" in msg
    assert "1 unexpected key(s): logit_scale_finegraind" in msg
    assert "vision_model.post_layernorm.weight: checkpoint (65,) vs model (64,)" in msg
    assert str(d) in msg


def test_truncated_safetensors(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "trunc")
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        FGCLIP2.from_pretrained(d)


def test_missing_shard_listed_in_index(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "s", max_shard_bytes=200_000)
    next((tmp_path / "s").glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(FileNotFoundError, match="model-00002"):
        FGCLIP2.from_pretrained(tmp_path / "s")


def test_bad_config(tiny_dir, tmp_path):
    d = copy_checkpoint(tiny_dir, tmp_path / "cfg")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        FGCLIP2.from_pretrained(d)
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="text_config"):
        FGCLIP2.from_pretrained(d)


def test_inconsistent_config_is_refused():
    with pytest.raises(ValueError, match="must equal text projection_size"):
        FGCLIP2Config.preset("tiny", vision={"hidden_size": 96})


# --------------------------------------------------------------------------------- converter
def test_stretch_position_embedding_follows_the_official_rule():
    table = torch.randn(64, 8, dtype=torch.float64)
    new = stretch_position_embedding(table, keep_len=20)
    assert new.shape == (196, 8)
    assert torch.equal(new[:20], table[:20])
    for i in range(43):
        for k in range(4):
            assert torch.allclose(new[20 + 4 * i + k], ((4 - k) * table[20 + i] + k * table[21 + i]) / 4)
    for k in range(4):
        assert torch.allclose(new[192 + k], table[63] + k * (table[63] - table[62]) / 4)
    # a linear ramp is reproduced exactly: positions 20.. become 20 + j/4
    ramp = torch.arange(64, dtype=torch.float64)[:, None]
    expected = torch.cat([torch.arange(20.0), 20 + torch.arange(176.0) / 4])[:, None].double()
    assert torch.allclose(stretch_position_embedding(ramp), expected)


def test_siglip2_conversion_loads_strictly_and_copies_heads(tiny_model, tmp_path):
    siglip_state = {k: v for k, v in tiny_model.state_dict().items()
                    if not k.startswith(("dense_feature_head", "boxtext_head", "longtext_head"))
                    and "position_embedding_res" not in k and "position_embedding_ori" not in k}
    siglip_state["text_model.embeddings.position_ids"] = torch.arange(64)[None]
    cfg = tiny_model.config.to_dict()
    siglip_cfg = {"model_type": "siglip2", "text_config": {k: v for k, v in cfg["text_config"].items()
                                                           if k not in ("keep_len", "longtext_len")},
                  "vision_config": cfg["vision_config"]}
    out = tmp_path / "converted"
    FGCLIP2Config.from_dict(siglip2_to_fgclip2_config(siglip_cfg)).save(out)
    from fgclip2_det.model.checkpoint import write_state_dict
    write_state_dict(out, siglip2_to_fgclip2_state_dict(siglip_state))
    model = FGCLIP2.from_pretrained(out)
    assert model.config.text.longtext_len == 196
    s = model.state_dict()
    for head in ("boxtext_head", "longtext_head"):
        assert torch.equal(s[f"{head}.weight"], siglip_state["text_model.head.weight"])
    for k, v in siglip_state.items():
        if k.startswith("vision_model.head."):
            assert torch.equal(s["dense_feature_head." + k[len("vision_model.head."):]], v)
    pos = siglip_state["text_model.embeddings.position_embedding.weight"]
    assert torch.equal(s["text_model.embeddings.position_embedding_res.weight"][:20], pos[:20])
    # with box head = text head, box and short text embeddings coincide after conversion
    ids = torch.randint(0, 100, (2, 64))
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids, "box"), model.encode_text(ids, "short"), atol=1e-6)


def test_conversion_rejects_non_siglip_state():
    with pytest.raises(CheckpointError, match="not a SigLIP 2"):
        siglip2_to_fgclip2_state_dict({"foo": torch.zeros(1)})


def _siglip2_folder(tiny_model, directory):
    """``tiny_model`` written as a SigLIP 2 NaFlex folder (Siglip2Model keys and config)."""
    from fgclip2_det.model.checkpoint import write_state_dict

    state = {k: v for k, v in tiny_model.state_dict().items()
             if not k.startswith(("dense_feature_head", "boxtext_head", "longtext_head"))
             and "position_embedding_res" not in k and "position_embedding_ori" not in k}
    cfg = tiny_model.config.to_dict()
    cfg = {"model_type": "siglip2", "vision_config": cfg["vision_config"],
           "text_config": {k: v for k, v in cfg["text_config"].items() if k not in ("keep_len", "longtext_len")}}
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(cfg))
    write_state_dict(directory, state)
    return state, cfg


def test_from_pretrained_opens_a_siglip2_folder_like_the_converter(tiny_model, tmp_path):
    """One conversion path: FGCLIP2.from_pretrained on a SigLIP 2 folder, tools/convert_siglip2.py and
    the explicit state-dict conversion give the same model."""
    from tool_helpers import load_tool

    state, _ = _siglip2_folder(tiny_model, tmp_path / "siglip2")
    direct = FGCLIP2.from_pretrained(tmp_path / "siglip2", keep_len=10)
    expected = siglip2_to_fgclip2_state_dict(state, keep_len=10)
    assert direct.config.text.keep_len == 10 and direct.config.text.longtext_len == 4 * 64 - 3 * 10
    assert direct.state_dict().keys() == expected.keys()
    for k, v in direct.state_dict().items():
        assert torch.equal(v, expected[k]), k
    convert = load_tool("convert_siglip2").main
    convert([str(tmp_path / "siglip2"), str(tmp_path / "out"), "--keep-len", "10"])
    for k, v in FGCLIP2.from_pretrained(tmp_path / "out").state_dict().items():
        assert torch.equal(v, expected[k]), k
    with pytest.raises(CheckpointError, match="not a SigLIP 2 folder"):
        convert([str(tmp_path / "out"), str(tmp_path / "again")])
