"""Checkpoint I/O in the official Hugging Face layout (config.json + safetensors, the keys of
``Fgclip2Model`` in MOD), and the SigLIP 2 -> FG-CLIP 2 initialisation (official ``--from_siglip2``:
``resize_postion_embeding``, ``copy_weight`` and ``copy_dense_feature_head`` in FG2; short names in
docs/official_code.md).

Reads safetensors directly rather than through transformers' ``from_pretrained``: it can leave our
non-persistent buffers uninitialised, and loading must be strict (every key, every shape).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
# Buffers that some exporters write but that are recomputed, never learned.
IGNORED_KEY_SUFFIXES = (".position_ids",)


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message lists every problem."""


def weight_files(directory: str | Path) -> list[Path]:
    """The weight files of a checkpoint: ``[model.safetensors]``, or the index followed by every shard
    it lists (sorted). The one place that knows the layout (loading and the embedding cache use it)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {directory}")
    single, index = directory / WEIGHTS_NAME, directory / INDEX_NAME
    if single.is_file():
        return [single]
    if index.is_file():
        return [index] + [directory / shard for shard in sorted(set(_weight_map(index).values()))]
    raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME} or {INDEX_NAME} (found: "
                            f"{sorted(p.name for p in directory.iterdir())})")


def _weight_map(index: Path) -> dict[str, str]:
    try:
        return json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a safetensors index with a 'weight_map' ({e})") from e


def read_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` or of the shards listed in ``model.safetensors.index.json``."""
    files = weight_files(directory)
    if files[0].name == WEIGHTS_NAME:
        return _load_safetensors(files[0])
    index, weight_map, state = files[0], _weight_map(files[0]), {}
    for path in files[1:]:
        tensors = _load_safetensors(path)
        expected = {k for k, v in weight_map.items() if v == path.name}
        missing = sorted(expected - tensors.keys())
        if missing:
            raise CheckpointError(f"{path}: keys listed in {index.name} are absent: {_short(missing)}")
        state.update({k: tensors[k] for k in expected})
    return state


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint shard not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors (truncated or corrupt?): {e}") from e


def write_state_dict(directory: str | Path, state: Mapping[str, torch.Tensor],
                     max_shard_bytes: int | None = None) -> None:
    """Writes ``model.safetensors``, or shards + index when the tensors exceed ``max_shard_bytes``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    total = sum(t.numel() * t.element_size() for t in state.values())
    meta = {"format": "pt"}
    if max_shard_bytes is None or total <= max_shard_bytes:
        save_file(state, str(directory / WEIGHTS_NAME), metadata=meta)
        return
    shards, current, size = [], {}, 0
    for key in sorted(state):
        nbytes = state[key].numel() * state[key].element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[key], size = state[key], size + nbytes
    shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / name), metadata=meta)
        weight_map.update({k: name for k in shard})
    (directory / INDEX_NAME).write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """Raises one :class:`CheckpointError` listing every missing key, unexpected key and shape mismatch."""
    expected = model.state_dict()
    given = {k for k in state if not k.endswith(IGNORED_KEY_SUFFIXES)}
    missing = sorted(expected.keys() - given)
    unexpected = sorted(given - expected.keys())
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(given & expected.keys()) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_short(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_short(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_short(mismatched)}")
    if problems:
        where = f" {source}" if source else ""
        raise CheckpointError(f"checkpoint{where} does not match the FG-CLIP 2 model built from its "
                              "config:\n  - " + "\n  - ".join(problems))


def _short(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


# ------------------------------------------------------------------------- SigLIP 2 -> FG-CLIP 2
def stretch_position_embedding(table: torch.Tensor, keep_len: int = 20) -> torch.Tensor:
    """Long-CLIP-style 4x stretch of a (L, D) text position table to (4L - 3K, D), as the official
    ``resize_postion_embeding`` (FG2:L106-143): the first K rows kept, rows K..L-1 linearly
    interpolated 4x, the last four extrapolated."""
    length, k = table.shape[0], keep_len
    if not 0 < k < length - 1:
        raise ValueError(f"keep_len {k} must be in (0, {length - 1}) for a table of length {length}")
    new = torch.empty(4 * length - 3 * k, table.shape[1], dtype=table.dtype)
    new[:k] = table[:k]
    for i in range(length - 1 - k):
        for j in range(4):
            new[k + 4 * i + j] = ((4 - j) * table[k + i] + j * table[k + i + 1]) / 4
    last, step = table[length - 1], (table[length - 1] - table[length - 2]) / 4
    for j in range(4):
        new[4 * length - 3 * k - 4 + j] = last + j * step
    return new


def siglip2_to_fgclip2_state_dict(state: Mapping[str, torch.Tensor], keep_len: int = 20) -> dict:
    """An FG-CLIP 2 initialisation from a SigLIP 2 NaFlex ``Siglip2Model`` state dict: text positions
    stretched 64 -> 196 for both long tables, ``text_model.head`` copied into the box and long heads,
    the MAP head copied into ``dense_feature_head`` (what the official ``--from_siglip2`` does)."""
    out = {k: v.clone() for k, v in state.items() if not k.endswith(IGNORED_KEY_SUFFIXES)}
    required = ["text_model.embeddings.position_embedding.weight", "text_model.head.weight",
                "text_model.head.bias", "vision_model.head.probe"]
    missing = [k for k in required if k not in out]
    if missing:
        raise CheckpointError(f"not a SigLIP 2 (Siglip2Model) state dict: missing {missing}")
    stretched = stretch_position_embedding(out["text_model.embeddings.position_embedding.weight"], keep_len)
    out["text_model.embeddings.position_embedding_res.weight"] = stretched.clone()
    out["text_model.embeddings.position_embedding_ori.weight"] = stretched.clone()
    for head in ("boxtext_head", "longtext_head"):
        out[f"{head}.weight"] = out["text_model.head.weight"].clone()
        out[f"{head}.bias"] = out["text_model.head.bias"].clone()
    for key in [k for k in out if k.startswith("vision_model.head.")]:
        out["dense_feature_head." + key[len("vision_model.head."):]] = out[key].clone()
    return out


def siglip2_source_config(directory: str | Path) -> dict | None:
    """The ``config.json`` of a SigLIP 2 NaFlex folder (``model_type`` "siglip2"), else None."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # FGCLIP2Config.from_pretrained reports it
    return raw if isinstance(raw, dict) and raw.get("model_type") == "siglip2" else None


def siglip2_to_fgclip2_config(config: dict, keep_len: int = 20) -> dict:
    """SigLIP 2 config.json dict -> FG-CLIP 2 config.json dict (adds keep_len / longtext_len)."""
    text = dict(config["text_config"])
    length = text.get("max_position_embeddings", 64)
    text.update(model_type="fgclip2_text_model", keep_len=keep_len, longtext_len=4 * length - 3 * keep_len)
    vision = dict(config["vision_config"], model_type="fgclip2_vision_model")
    return {"model_type": "fgclip2", "architectures": ["FGCLIP2Model"],
            "initializer_factor": config.get("initializer_factor", 1.0),
            "text_config": text, "vision_config": vision}

