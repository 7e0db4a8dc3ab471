"""A ViTDet-style simple feature pyramid: strides 4-64 from one stride-16 ViT map.

Plain ViTs have one resolution; ViTDet (Li et al. 2022) showed that a pyramid built from the last
map alone (deconvolutions up, max-pooling down) is as good as a hierarchical backbone's. Here:
stride 4 = two 2x deconvs, 8 = one deconv, 16 = identity, 32 = 2x2 max-pool, each followed by a
1x1 and a 3x3 conv to ``out_channels`` (with norms), plus stride 64 by a stride-2 max-pool of the
stride-32 output (as MMDetection's FPN ``add_extra_convs=False``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmdet.registry import MODELS
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW map (ViTDet's norm)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def build_norm2d(norm_cfg: dict | None, channels: int) -> nn.Module | None:
    """``dict(type='LN2d', eps=...)`` -> :class:`LayerNorm2d`; other types (GN, BN, SyncBN) through
    mmcv's ``build_norm_layer``; None -> no norm."""
    if norm_cfg is None:
        return None
    cfg = dict(norm_cfg)
    if cfg.get("type") == "LN2d":
        return LayerNorm2d(channels, eps=cfg.get("eps", 1e-6))
    return build_norm_layer(cfg, channels)[1]


def conv_norm(in_channels: int, out_channels: int, kernel_size: int, norm_cfg: dict | None) -> nn.Sequential:
    norm = build_norm2d(norm_cfg, out_channels)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm is None)
    return nn.Sequential(conv) if norm is None else nn.Sequential(conv, norm)


@MODELS.register_module()
class SimplePyramid(BaseModule):
    """Stride-16 map -> (stride 4, 8, 16, 32[, 64]) maps of ``out_channels``.

    Args:
        in_channels: channels of the backbone map (ViT width, e.g. 768 for base).
        out_channels: channels of every output level.
        in_index: which backbone output to use (default the last block map of
            :class:`~fgclip2_det.openvocab.vit_features.FGCLIP2ViT`), or one index per scale factor (F-ViT:
            earlier blocks feed the finer levels); a single tensor input is used as is.
        scale_factors: levels to build, among 4.0, 2.0, 1.0, 0.5 (relative to stride 16).
        extra_pool: add the stride-64 level.
        norm_cfg: norm after each deconv/conv, ``dict(type='LN2d')`` (ViTDet) or e.g.
            ``dict(type='GN', num_groups=32)``; None for none.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, in_index: int | Sequence[int] = -1,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), extra_pool: bool = True,
                 norm_cfg: dict | None = dict(type="LN2d", eps=1e-6), init_cfg: dict | None = None):
        super().__init__(init_cfg=init_cfg)
        unknown = [s for s in scale_factors if s not in (4.0, 2.0, 1.0, 0.5)]
        if unknown or not scale_factors:
            raise ValueError(f"scale_factors must be a non-empty subset of (4.0, 2.0, 1.0, 0.5), got "
                             f"{tuple(scale_factors)}")
        self.scale_factors = tuple(float(s) for s in scale_factors)
        indices = [in_index] * len(self.scale_factors) if isinstance(in_index, int) else list(in_index)
        if len(indices) != len(self.scale_factors):
            raise ValueError(f"in_index needs one entry per scale factor ({len(self.scale_factors)}), "
                             f"got {in_index!r}")
        self.in_indices = tuple(indices)
        self.extra_pool = extra_pool
        self.resamplers = nn.ModuleList()
        self.laterals = nn.ModuleList()
        self.outputs = nn.ModuleList()
        for scale in self.scale_factors:
            resample, channels = self._resampler(scale, in_channels, norm_cfg)
            self.resamplers.append(resample)
            self.laterals.append(conv_norm(channels, out_channels, 1, norm_cfg))
            self.outputs.append(conv_norm(out_channels, out_channels, 3, norm_cfg))

    @staticmethod
    def _resampler(scale: float, channels: int, norm_cfg: dict | None) -> tuple[nn.Module, int]:
        if scale == 4.0:
            half, quarter = channels // 2, channels // 4
            norm = build_norm2d(norm_cfg, half)
            layers = [nn.ConvTranspose2d(channels, half, 2, stride=2)]
            layers += ([norm] if norm is not None else []) + [nn.GELU(),
                                                              nn.ConvTranspose2d(half, quarter, 2, stride=2)]
            return nn.Sequential(*layers), quarter
        if scale == 2.0:
            return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
        if scale == 1.0:
            return nn.Identity(), channels
        return nn.MaxPool2d(kernel_size=2, stride=2), channels

    def forward(self, inputs: torch.Tensor | Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        maps = [inputs if isinstance(inputs, torch.Tensor) else inputs[i] for i in self.in_indices]
        outs = [out(lat(res(x))) for x, res, lat, out in zip(maps, self.resamplers, self.laterals, self.outputs)]
        if self.extra_pool:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)


@MODELS.register_module()
class SequentialNeck(BaseModule):
    """Necks applied one after the other, e.g. ``[SimplePyramid, FPN]`` (F-ViT's pyramid + FPN):
    an MMDetection detector takes a single ``neck``."""

    def __init__(self, necks: Sequence[dict], init_cfg: dict | None = None):
        super().__init__(init_cfg=init_cfg)
        if not necks:
            raise ValueError("SequentialNeck needs at least one neck config")
        self.necks = nn.ModuleList(MODELS.build(cfg) for cfg in necks)

    def forward(self, inputs):
        for neck in self.necks:
            inputs = neck(inputs)
        return inputs
