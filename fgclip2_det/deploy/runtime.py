"""Runs the exported FG-CLIP 2 graphs with onnxruntime, with the model API's inputs (docs/export.md).

Inputs and outputs are numpy arrays and every embedding is computed by onnxruntime; torch only
lays out the patches (``model/vision.py`` ``patchify``, the layout the vision graph was exported with).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..model.text import TEXT_KINDS
from ..model.vision import patchify
from .onnx_export import GRAPH_FILES


def patchify_np(image: np.ndarray, patch_size: int = 16) -> np.ndarray:
    """(C, H, W) float image normalised to [-1, 1] -> (h*w, p*p*C) patch tokens, row-major over the
    grid, each patch flattened as (row, column, channel)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[1] % patch_size or image.shape[2] % patch_size or 0 in image.shape:
        raise ValueError(f"expected a (C, H, W) image with H and W positive multiples of {patch_size}; "
                         f"got shape {image.shape}")
    return patchify(torch.from_numpy(image), patch_size).numpy()


def pack_images(images: Sequence[np.ndarray], patch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Images -> (packed patches (T, p*p*C), grids (B, 2) int64): the vision graph's inputs."""
    patches = [patchify_np(img, patch_size) for img in images]
    grids = np.array([[img.shape[1] // patch_size, img.shape[2] // patch_size] for img in images], np.int64)
    return np.concatenate(patches), grids


class OnnxFGCLIP2:
    """The exported graphs of one folder as onnxruntime sessions (CPU by default), created lazily.

    ``per_image=True`` (default) runs the vision graph once per image: its attention is masked to
    block-diagonal over a pack, so a pack of B images costs B^2 more attention memory than B calls.
    """

    def __init__(self, onnx_dir: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",),
                 patch_size: int = 16, threads: int | None = None):
        self.dir = Path(onnx_dir)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"ONNX folder not found: {self.dir} (tools/export_onnx.py writes one)")
        self.providers = list(providers)
        self.patch_size = patch_size
        self.threads = threads
        self._sessions = {}

    def session(self, name: str):
        if name not in GRAPH_FILES:
            raise ValueError(f"unknown graph {name!r}; expected one of {list(GRAPH_FILES)}")
        if name not in self._sessions:
            import onnxruntime as ort

            path = self.dir / GRAPH_FILES[name]
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: export it with tools/export_onnx.py --graphs {name}")
            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
            self._sessions[name] = ort.InferenceSession(str(path), opts, providers=self.providers)
        return self._sessions[name]

    def vision(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One pack -> (last_hidden_state (T, D), image_embeds (B, D), grids (B, 2))."""
        patches, grids = pack_images(images, self.patch_size)
        hidden, embeds = self.session("vision").run(None, {"patches": patches, "grids": grids})
        return hidden, embeds, grids

    def _per_image(self, images, per_image: bool):
        packs = [[img] for img in images] if per_image else [list(images)]
        return [self.vision(p) for p in packs]

    def encode_image(self, images: Sequence[np.ndarray], per_image: bool = True) -> np.ndarray:
        """(B, D) L2-normalised global embeddings."""
        return np.concatenate([embeds for _, embeds, _ in self._per_image(images, per_image)])

    def dense_maps(self, images: Sequence[np.ndarray], per_image: bool = True) -> list[np.ndarray]:
        """Per image the (D, h, w) dense-head map, *unnormalised* (what :meth:`encode_regions` pools)."""
        maps = []
        for hidden, _, grids in self._per_image(images, per_image):
            dense = self.session("dense_head").run(None, {"last_hidden_state": hidden, "grids": grids})[0]
            lengths = (grids[:, 0] * grids[:, 1]).tolist()
            for part, (h, w) in zip(np.split(dense, np.cumsum(lengths)[:-1]), grids.tolist()):
                maps.append(part.T.reshape(-1, h, w))
        return maps

    def encode_dense(self, images: Sequence[np.ndarray], per_image: bool = True) -> list[np.ndarray]:
        """Per image the (D, h, w) dense map, L2-normalised at each location (``FGCLIP2.encode_dense``)."""
        return [m / np.maximum(np.linalg.norm(m, axis=0, keepdims=True), 1e-12)
                for m in self.dense_maps(images, per_image)]

    def pool_regions(self, dense_map: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, D) region embeddings of xyxy pixel boxes on one unnormalised (D, h, w) map."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, dense_map.shape[0]), np.float32)
        return self.session("region").run(None, {"dense_map": np.asarray(dense_map, np.float32),
                                                 "boxes": boxes})[0]

    def encode_regions(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image (N_i, D) L2-normalised region embeddings (``FGCLIP2.encode_regions``)."""
        if len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} box lists for {len(images)} images")
        return [self.pool_regions(m, b) for m, b in zip(self.dense_maps(images), boxes)]

    def encode_text(self, input_ids: np.ndarray, kind: str = "short",
                    attention_mask: np.ndarray | None = None) -> np.ndarray:
        """(B, D) L2-normalised text embeddings; no mask = attend to every position (training default)."""
        if kind not in TEXT_KINDS:
            raise ValueError(f"unknown text kind {kind!r}; expected one of {TEXT_KINDS}")
        ids = np.asarray(input_ids, np.int64)
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int64)
        return self.session(f"text_{kind}").run(None, {"input_ids": ids, "attention_mask": mask})[0]
