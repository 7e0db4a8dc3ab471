"""Writes FG-CLIP 2 as ONNX graphs, one file per graph (docs/export.md).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript). It records symbolic
dimensions from ``dynamic_shapes`` (packed token count, number of images, boxes, batch, map size)
and checks them while tracing, so a graph that would silently bake a size in fails at export
instead; the TorchScript exporter records whatever sizes the example input had unless every op
handles them, and is deprecated in torch 2.13.

Opset :data:`OPSET` (18): the opset the exporter's op library (onnxscript torchlib,
``TORCHLIB_OPSET`` in torch 2.13) is written in, so no version-conversion pass runs (torch's default
20 converts every graph); checked with onnxruntime 1.32.0 (docs/export.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch

from ..model.fgclip2 import FGCLIP2
from ..model.text import TEXT_KINDS
from .graphs import DenseHeadGraph, RegionGraph, TextGraph, VisionGraph

OPSET = 18
GRAPH_FILES = {"vision": "vision.onnx", "dense_head": "dense_head.onnx", "text_short": "text_short.onnx",
               "text_box": "text_box.onnx", "text_long": "text_long.onnx", "region": "region.onnx"}
GRAPHS = tuple(GRAPH_FILES)

logger = logging.getLogger(__name__)


def load_for_export(checkpoint: str | Path) -> FGCLIP2:
    """The model of a checkpoint directory, float32 on CPU; a clear error when it is not one."""
    path = Path(checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json (expected an FG-CLIP 2 checkpoint in the official "
                                "layout: config.json + model.safetensors)")
    return FGCLIP2.from_pretrained(path)


def _export(module: torch.nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
            dynamic_shapes: tuple, opset: int) -> Path:
    module.eval()
    with torch.no_grad():
        program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=input_names,
                                    output_names=output_names, dynamic_shapes=dynamic_shapes,
                                    external_data=False, verbose=False, report=False)
    program.save(str(path), external_data=False)
    return path


def _example_grids(patch_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two images of different grids (3x5 and 4x2): a packed example with distinct sizes, so no
    dimension can be mistaken for a constant."""
    grids = torch.tensor([[3, 5], [4, 2]], dtype=torch.int64)
    tokens = int((grids[:, 0] * grids[:, 1]).sum())
    return torch.randn(tokens, channels * patch_size ** 2), grids


def export_vision(model: FGCLIP2, path: Path, opset: int = OPSET) -> Path:
    patches, grids = _example_grids(model.patch_size, model.config.vision.num_channels)
    tokens, images = torch.export.Dim("tokens", min=2), torch.export.Dim("images", min=1)
    return _export(VisionGraph(model), (patches, grids), path, ["patches", "grids"],
                   ["last_hidden_state", "image_embeds"], ({0: tokens}, {0: images}), opset)


def export_dense_head(model: FGCLIP2, path: Path, opset: int = OPSET) -> Path:
    _, grids = _example_grids(model.patch_size, model.config.vision.num_channels)
    hidden = torch.randn(int((grids[:, 0] * grids[:, 1]).sum()), model.config.embed_dim)
    tokens, images = torch.export.Dim("tokens", min=2), torch.export.Dim("images", min=1)
    return _export(DenseHeadGraph(model), (hidden, grids), path, ["last_hidden_state", "grids"],
                   ["dense_features"], ({0: tokens}, {0: images}), opset)


def export_text(model: FGCLIP2, kind: str, path: Path, opset: int = OPSET) -> Path:
    graph = TextGraph(model, kind)  # validates kind
    ids = torch.randint(0, model.config.text.vocab_size, (3, graph.length))
    mask = torch.ones_like(ids)
    batch = torch.export.Dim("batch", min=1)
    return _export(graph, (ids, mask), path, ["input_ids", "attention_mask"], ["text_embeds"],
                   ({0: batch}, {0: batch}), opset)


def export_region(model: FGCLIP2, path: Path, opset: int = OPSET) -> Path:
    dense = torch.randn(model.config.embed_dim, 5, 7)
    boxes = torch.tensor([[0.0, 0.0, 40.0, 30.0], [10.0, 20.0, 100.0, 70.0], [5.0, 5.0, 5.0, 50.0]])
    h, w = torch.export.Dim("height", min=2), torch.export.Dim("width", min=2)
    n = torch.export.Dim("boxes", min=1)
    return _export(RegionGraph(model.patch_size), (dense, boxes), path, ["dense_map", "boxes"],
                   ["region_embeds"], ({1: h, 2: w}, {0: n}), opset)


def export_fgclip2_onnx(checkpoint: str | Path, out_dir: str | Path, graphs=GRAPHS, opset: int = OPSET,
                        log: Callable[[str], None] = print) -> dict[str, Path]:
    """Exports the chosen graphs (:data:`GRAPHS`) of a checkpoint into ``out_dir``; returns
    name -> file. ``log`` gets one line per graph (a CLI progress message)."""
    unknown = [g for g in graphs if g not in GRAPH_FILES]
    if unknown:
        raise ValueError(f"unknown graph(s) {unknown}; expected any of {list(GRAPHS)} "
                         f"(text kinds: {list(TEXT_KINDS)})")
    model = load_for_export(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(graphs, 1):
        path = out / GRAPH_FILES[name]
        log(f"[export_onnx] ({i}/{len(graphs)}) {name} -> {path}")
        if name == "vision":
            export_vision(model, path, opset)
        elif name == "dense_head":
            export_dense_head(model, path, opset)
        elif name == "region":
            export_region(model, path, opset)
        else:
            export_text(model, name.removeprefix("text_"), path, opset)
        written[name] = path
    return written
