"""FG-CLIP 2 vision tower as a backbone of stride-16 feature maps, in plain PyTorch.

MMDetection registers it as ``FGCLIP2ViT`` (``fgclip2_det.det``) and detectron2 wraps it
(``fgclip2_det.integrations.detectron2``); the module itself needs neither.

Padding hand-off
----------------
MMDetection pads a batch to a common size (``DetDataPreprocessor``, ``pad_size_divisor`` 16 or 32),
but a ViT's attention mixes every token with every other one, so padding would change the features
of an image. The backbone therefore takes the unpadded sizes::

    feats = backbone(batch_inputs, img_shapes=[s.img_shape for s in batch_data_samples])

For each image it crops ``batch_inputs[b, :, :H16, :W16]`` with ``H16, W16`` = ``img_shape`` rounded
**up** to a multiple of the patch size (16), runs the packed FG-CLIP 2 encoder on the list of crops
(attention per image, no padding tokens), and scatters each image's maps into zero-padded NCHW
tensors of the padded batch size / 16 (rounded up). The up to 15 extra pixel rows/columns a crop
holds are batch padding (0 after normalisation, i.e. mid-grey), or zeros added here when the batch
is smaller than the rounded size; they are the same whether the image is alone or in a batch, so an
image's features never depend on its batch-mates. Without ``img_shapes`` the whole padded tensor
is one image each (what a plain ``backbone(x)`` call in an unmodified MMDetection detector does).

Output: :class:`ViTFeatureMaps`, a tuple of stride-16 maps (one per ``out_indices`` entry, raw
block outputs) that standard necks iterate, with the text-aligned dense map (unnormalised, the
region classifier pools it) and the per-image patch grids attached as attributes.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..model.layers import take_indices
from .towers import load_fgclip2_tower


#: F-ViT's taps for the depths it uses (CLIPSelf F-ViT/configs: ViT-B/16 ``out_indices=[3, 5, 7, 11]``,
#: ViT-L/14 ``[6, 10, 14, 23]``).
FVIT_OUT_INDICES = {12: (3, 5, 7, 11), 24: (6, 10, 14, 23)}


def default_out_indices(depth: int) -> tuple[int, ...]:
    """Four block taps: F-ViT's for 12 blocks (base) and 24 (large), else blocks at 1/3, 1/2, 2/3 and
    the end of the encoder, e.g. (8, 13, 17, 26) for so400m's 27 (the same rule gives F-ViT's B/16 taps)."""
    if depth in FVIT_OUT_INDICES:
        return FVIT_OUT_INDICES[depth]
    return tuple(max(0, int(depth * f + 0.5) - 1) for f in (1 / 3, 1 / 2, 2 / 3, 1.0))


def round_up(size: int, multiple: int) -> int:
    return int(math.ceil(size / multiple) * multiple)


class ViTFeatureMaps(tuple):
    """Stride-16 block maps (B, D, Hg, Wg) as a tuple, plus:

    * ``dense``: (B, D, Hg, Wg) dense-head map (unnormalised) or None;
    * ``grids``: per image the (h, w) patch grid of its real region; the rest of each map is zero.
    """

    def __new__(cls, maps: Sequence[torch.Tensor], dense: torch.Tensor | None,
                grids: Sequence[tuple[int, int]]):
        obj = super().__new__(cls, maps)
        obj.dense = dense
        obj.grids = [tuple(g) for g in grids]
        return obj

    def image_dense_maps(self) -> list[torch.Tensor]:
        """The dense map of each image cropped to its grid, (D, h, w): what RoIAlign must read so
        that samples past the last real column clamp to it instead of reading batch padding."""
        if self.dense is None:
            raise ValueError("the backbone was built with with_dense=False")
        return [self.dense[b, :, :h, :w] for b, (h, w) in enumerate(self.grids)]


class FGCLIP2ViT(nn.Module):
    """FG-CLIP 2 NaFlex ViT + dense head, weights loaded in ``__init__``.

    The runner calls ``init_weights`` only for training, so ``tools/test.py`` would otherwise see
    random weights; loading here makes a config-built model complete.

    Args:
        checkpoint: FG-CLIP 2 checkpoint directory (official HF layout).
        out_indices: encoder blocks to return (0-based, negatives count from the end); None ->
            :func:`default_out_indices`; () -> no block maps (only the dense map).
        frozen: parameters get ``requires_grad=False`` and stay in eval mode under ``train()``.
        trainable_blocks: with ``frozen=True``, the last k encoder blocks are trainable (and follow
            ``train()``); post-LN and the dense head stay frozen, so the dense map stays in the
            text-aligned space the heads were trained for.
        with_dense: compute the dense-head map (needed by region classifiers).

    A backbone without trainable parameters runs without autograd (no stored activations).
    """

    def __init__(self, checkpoint: str, out_indices: Sequence[int] | None = None, frozen: bool = True,
                 trainable_blocks: int = 0, with_dense: bool = True, init_cfg: dict | None = None):
        super().__init__()
        self.init_cfg = init_cfg
        self.checkpoint = str(checkpoint)
        self.fgclip2 = load_fgclip2_tower(checkpoint, "vision", "model.backbone.checkpoint")
        self.patch_size = self.fgclip2.patch_size
        self.embed_dim = self.fgclip2.config.embed_dim
        depth = self.fgclip2.config.vision.num_hidden_layers
        self.out_indices = self._resolve_out_indices(out_indices, depth)
        if not (isinstance(trainable_blocks, int) and 0 <= trainable_blocks <= depth):
            raise ValueError(f"trainable_blocks must be an int in [0, {depth}], got {trainable_blocks!r}")
        if not frozen and trainable_blocks:
            raise ValueError("trainable_blocks applies to a frozen backbone; with frozen=False every "
                             "parameter is already trainable")
        self.frozen = frozen
        self.trainable_blocks = trainable_blocks
        self.with_dense = with_dense
        self._set_trainable()

    @staticmethod
    def _resolve_out_indices(out_indices, depth: int) -> tuple[int, ...]:
        return default_out_indices(depth) if out_indices is None else take_indices(out_indices, depth)

    # --------------------------------------------------------------------------- trainability
    def _trainable_modules(self) -> list[torch.nn.Module]:
        if not self.frozen:
            return [self.fgclip2]
        layers = self.fgclip2.vision_model.encoder.layers
        return list(layers[len(layers) - self.trainable_blocks:]) if self.trainable_blocks else []

    def _set_trainable(self) -> None:
        self.fgclip2.requires_grad_(False)
        for module in self._trainable_modules():
            module.requires_grad_(True)
        # Never used here (the dense head takes every token as its query; no dense map without
        # with_dense): trainable but unused parameters would break DDP's unused-parameter check.
        self.fgclip2.dense_feature_head.probe.requires_grad_(False)
        if not self.with_dense:
            self.fgclip2.dense_feature_head.requires_grad_(False)

    def train(self, mode: bool = True) -> "FGCLIP2ViT":
        """Frozen parts stay in eval mode; only trainable blocks follow ``mode``."""
        super().train(mode)
        self.fgclip2.eval()
        for module in self._trainable_modules():
            module.train(mode)
        return self

    def init_weights(self) -> None:
        """Weights were loaded from the checkpoint in ``__init__``; nothing to initialise.

        (An ``init_cfg`` would overwrite them, which is never what a config means here.)"""
        if self.init_cfg:
            raise ValueError("FGCLIP2ViT loads its weights from `checkpoint` in __init__; "
                             f"remove init_cfg={self.init_cfg!r}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A detector checkpoint carries the frozen tower's weights, but the class text embeddings
        come from ``checkpoint`` (the text tower is not in the detector): refuse a checkpoint whose
        frozen weights differ, which would mix two FG-CLIP 2 models without a trace."""
        if self.frozen:
            self._check_frozen_weights(state_dict, prefix + "fgclip2.")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check_frozen_weights(self, state_dict, prefix: str) -> None:
        for name, param in self.fgclip2.named_parameters():
            incoming = state_dict.get(prefix + name)
            if param.requires_grad or incoming is None or incoming.shape != param.shape:
                continue  # trained here, or missing/mis-shaped: load_state_dict reports those
            if not torch.allclose(incoming.to(param.device, param.dtype), param, rtol=1e-3, atol=1e-6):
                raise ValueError(
                    f"the checkpoint being loaded holds frozen FG-CLIP 2 weights ({prefix + name}, "
                    f"max |diff| {float((incoming.to(param) - param).abs().max()):.3g}) that differ from "
                    f"model.backbone.checkpoint={self.checkpoint!r}, which also gives the class text "
                    "embeddings; set model.backbone.checkpoint to the FG-CLIP 2 this model was trained with")

    # --------------------------------------------------------------------------------- forward
    def crop_images(self, x: torch.Tensor, img_shapes: Sequence[tuple[int, int]] | None
                    ) -> list[torch.Tensor]:
        """Per image the real region, rounded up to multiples of the patch size (module doc)."""
        if x.dim() != 4:
            raise ValueError(f"expected a (B, 3, H, W) batch, got shape {tuple(x.shape)}")
        b, _, height, width = x.shape
        if img_shapes is None:
            img_shapes = [(height, width)] * b
        if len(img_shapes) != b:
            raise ValueError(f"got {len(img_shapes)} img_shapes for a batch of {b} images")
        p, crops = self.patch_size, []
        for i, shape in enumerate(img_shapes):
            h, w = int(shape[0]), int(shape[1])
            if not (0 < h <= height and 0 < w <= width):
                raise ValueError(f"image {i}: img_shape {(h, w)} does not fit the batch of size "
                                 f"{(height, width)}")
            ch, cw = round_up(h, p), round_up(w, p)
            crop = x[i, :, :ch, :cw]
            if crop.shape[-2:] != (ch, cw):
                crop = F.pad(crop, (0, cw - crop.shape[-1], 0, ch - crop.shape[-2]))
            crops.append(crop)
        return crops

    def forward(self, x: torch.Tensor, img_shapes: Sequence[tuple[int, int]] | None = None
                ) -> ViTFeatureMaps:
        crops = self.crop_images(x, img_shapes)
        unique = tuple(sorted(set(self.out_indices)))
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        with torch.set_grad_enabled(needs_grad):
            feats = self.fgclip2.vision_features(crops, unique, with_global=False,
                                                 with_dense=self.with_dense)
        grid_h = round_up(x.shape[-2], self.patch_size) // self.patch_size
        grid_w = round_up(x.shape[-1], self.patch_size) // self.patch_size
        by_index = dict(zip(unique, feats.intermediates))
        maps = [_scatter(by_index[i], grid_h, grid_w) for i in self.out_indices]
        dense = _scatter(feats.dense_maps, grid_h, grid_w) if self.with_dense else None
        return ViTFeatureMaps(maps, dense, feats.grids)


def _scatter(per_image: list[torch.Tensor], grid_h: int, grid_w: int) -> torch.Tensor:
    """(D, h_i, w_i) maps -> (B, D, grid_h, grid_w), each at the top-left, zeros elsewhere."""
    return torch.stack([F.pad(m, (0, grid_w - m.shape[-1], 0, grid_h - m.shape[-2])) for m in per_image])
