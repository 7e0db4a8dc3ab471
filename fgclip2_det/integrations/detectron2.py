"""FG-CLIP 2 as a detectron2 backbone, for open-vocabulary segmentation code (CAT-Seg, SAN, FC-CLIP).

Two layers, so that the adapter is usable and testable without detectron2:

* :class:`FGCLIP2Detectron2Backbone`: a plain ``nn.Module`` wrapping
  :class:`~fgclip2_det.openvocab.vit_features.FGCLIP2ViT` with detectron2's backbone interface (``forward``
  returns ``{name: (B, C, H/16, W/16)}``; ``output_shape``, ``size_divisibility``,
  ``padding_constraints``). Features: ``"block{i}"`` (raw output of encoder block ``i``, 0-based)
  for each tap and ``"dense"`` (the text-aligned dense-head map, unnormalised: what CAT-Seg-style
  cost volumes compare with text embeddings, after L2). All have stride 16 and D channels.
* With detectron2 installed, importing this module (or :func:`register`) defines
  ``FGCLIP2Backbone`` (the adapter + ``detectron2.modeling.Backbone``, which ``build_backbone``
  asserts) and registers :func:`build_fgclip2_backbone` in ``BACKBONE_REGISTRY``.

detectron2 config (after :func:`add_fgclip2_config`)::

    MODEL.BACKBONE.NAME = "build_fgclip2_backbone"
    MODEL.PIXEL_MEAN = [127.5, 127.5, 127.5]   # FG-CLIP 2 sees (x - 127.5) / 127.5; the builder
    MODEL.PIXEL_STD = [127.5, 127.5, 127.5]    # refuses other values (features would be wrong)
    INPUT.FORMAT = "RGB"                        # "BGR" also works: the backbone flips channels
    MODEL.FGCLIP2.CHECKPOINT = "checkpoints/fg-clip2-base"
    MODEL.FGCLIP2.OUT_FEATURES = ["dense"]      # [] = every block tap + "dense"

Padding: detectron2 pads a batch (``ImageList.from_tensors``, value 0 = mid-grey after the
normalisation above) and meta-architectures call ``backbone(images.tensor)``, so a ViT sees the
padding as image content and an image's features depend on its batch-mates. Pass the real sizes,
``backbone(images.tensor, images.image_sizes)`` or ``backbone(images)`` with the ``ImageList``, to
get per-image features (see the padding notes of :mod:`fgclip2_det.openvocab.vit_features`); outside each
image's patch grid the maps are then zero.
"""
from __future__ import annotations

import importlib.util
import sys
from collections import namedtuple
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..openvocab.vit_features import FGCLIP2ViT

__all__ = ["FGCLIP2Detectron2Backbone", "add_fgclip2_config", "build_fgclip2_backbone", "register",
           "detectron2_available"]

INSTALL_HINT = ("detectron2 is not installed (it has no wheels on PyPI); install it from source, built "
                "against the installed torch: pip install 'git+https://github.com/facebookresearch/"
                "detectron2.git' (add --no-build-isolation if the build cannot find torch)")
PIXEL_VALUE = 127.5  # PIXEL_MEAN = PIXEL_STD = [127.5] * 3 maps [0, 255] to FG-CLIP 2's [-1, 1]

# Used for output_shape() without detectron2: the fields of detectron2.layers.ShapeSpec.
_FallbackShapeSpec = namedtuple("ShapeSpec", ["channels", "height", "width", "stride"],
                                defaults=(None, None, None, None))


def detectron2_available() -> bool:
    """Whether ``import detectron2`` can work (also true for a module placed in ``sys.modules``)."""
    return "detectron2" in sys.modules or importlib.util.find_spec("detectron2") is not None


def _require(module: str):
    """Import a detectron2 submodule, or ImportError with the install hint if detectron2 is absent."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name == "detectron2":
            raise ImportError(INSTALL_HINT) from err
        raise


def _shape_spec(**fields):
    """detectron2's ShapeSpec where available (what its heads expect), else the same-field tuple."""
    try:
        from detectron2.layers import ShapeSpec
    except ImportError:
        ShapeSpec = _FallbackShapeSpec
    return ShapeSpec(**fields)


class FGCLIP2Detectron2Backbone(nn.Module):
    """FG-CLIP 2 vision tower with detectron2's backbone interface; needs no detectron2.

    Args:
        checkpoint: FG-CLIP 2 checkpoint directory (official HF layout).
        out_indices: encoder blocks to tap (0-based, negatives from the end; repeats are merged);
            None -> 1/3, 1/2, 2/3 and the end of the encoder.
        frozen, trainable_blocks: as :class:`FGCLIP2ViT` (frozen except the last k blocks; the
            dense head always stays frozen when ``frozen``, keeping "dense" text-aligned).
        out_features: names to return, among ``"block{i}"`` of the taps and ``"dense"``; None or
            empty -> all. The dense head only runs when "dense" is asked for.
        input_format: channel order of the input, "RGB" or "BGR" (detectron2's INPUT.FORMAT).
    """

    def __init__(self, checkpoint: str, out_indices: Sequence[int] | None = None, frozen: bool = True,
                 trainable_blocks: int = 0, out_features: Sequence[str] | None = None,
                 input_format: str = "RGB"):
        super().__init__()
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"input_format must be 'RGB' or 'BGR', got {input_format!r}")
        self.input_format = input_format
        with_dense = not out_features or "dense" in out_features
        self.vit = FGCLIP2ViT(checkpoint, out_indices, frozen=frozen, trainable_blocks=trainable_blocks,
                              with_dense=with_dense)
        self._block_pos: dict[str, int] = {}  # name -> position in the ViT's tuple of block maps
        for k, i in enumerate(self.vit.out_indices):
            self._block_pos.setdefault(f"block{i}", k)
        available = list(self._block_pos) + ["dense"]
        unknown = [n for n in out_features or () if n not in available]
        if unknown:
            raise ValueError(f"unknown FG-CLIP 2 feature(s) {unknown}; available: {available} "
                             f"(taps come from out_indices {list(self.vit.out_indices)})")
        # detectron2's Backbone keeps these three; its default output_shape() reads them
        self._out_features = list(out_features) if out_features else available
        self._out_feature_channels = {n: self.vit.embed_dim for n in self._out_features}
        self._out_feature_strides = {n: self.vit.patch_size for n in self._out_features}

    def forward(self, images, image_sizes: Sequence[tuple[int, int]] | None = None
                ) -> dict[str, torch.Tensor]:
        """``images``: normalised (B, 3, H, W) batch, or a detectron2 ``ImageList`` (its
        ``image_sizes`` are then used). ``image_sizes``: per image the real (h, w) inside the padded
        batch; without them each padded image is one image (module doc)."""
        if hasattr(images, "tensor") and hasattr(images, "image_sizes"):
            images, image_sizes = images.tensor, image_sizes or images.image_sizes
        if self.input_format == "BGR":
            images = images.flip(1)
        feats = self.vit(images, img_shapes=image_sizes)
        return {name: feats.dense if name == "dense" else feats[self._block_pos[name]]
                for name in self._out_features}

    def output_shape(self) -> dict:
        return {name: _shape_spec(channels=self._out_feature_channels[name],
                                  stride=self._out_feature_strides[name]) for name in self._out_features}

    @property
    def size_divisibility(self) -> int:
        """Pad batches to the patch size (16): a partial patch would be zero-filled anyway."""
        return self.vit.patch_size

    @property
    def padding_constraints(self) -> dict[str, int]:
        return {"size_divisibility": self.size_divisibility, "square_size": 0}


# ------------------------------------------------------------------------------- detectron2 side
_BACKBONE_CLASSES: dict[type, type] = {}  # detectron2 Backbone class -> our subclass of it


def _backbone_class() -> type:
    """The adapter + ``detectron2.modeling.Backbone`` (``build_backbone`` asserts isinstance)."""
    base = _require("detectron2.modeling").Backbone
    if base not in _BACKBONE_CLASSES:
        cls = type("FGCLIP2Backbone", (FGCLIP2Detectron2Backbone, base),
                   {"__module__": __name__, "__doc__": "FGCLIP2Detectron2Backbone as a detectron2 Backbone."})
        _BACKBONE_CLASSES[base] = cls
    return _BACKBONE_CLASSES[base]


def __getattr__(name: str):
    """``FGCLIP2Backbone`` exists only with detectron2 (it subclasses detectron2's Backbone)."""
    if name == "FGCLIP2Backbone":
        return _backbone_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_fgclip2_config(cfg) -> None:
    """Add ``MODEL.FGCLIP2`` (defaults below) to a detectron2 config, as detectron2 projects do.

    OUT_INDICES [] -> default taps; OUT_FEATURES [] -> every tap + "dense" (empty lists rather than
    None so that YAML files can override them without yacs type errors)."""
    CN = _require("detectron2.config").CfgNode
    cfg.MODEL.FGCLIP2 = CN()
    cfg.MODEL.FGCLIP2.CHECKPOINT = ""
    cfg.MODEL.FGCLIP2.OUT_INDICES = []
    cfg.MODEL.FGCLIP2.FROZEN = True
    cfg.MODEL.FGCLIP2.TRAINABLE_BLOCKS = 0
    cfg.MODEL.FGCLIP2.OUT_FEATURES = []


def build_fgclip2_backbone(cfg, input_shape):
    """``BACKBONE_REGISTRY`` builder: ``FGCLIP2Backbone`` from ``cfg.MODEL.FGCLIP2``."""
    c = cfg.MODEL.FGCLIP2
    if input_shape is not None and input_shape.channels not in (None, 3):
        raise ValueError(f"FG-CLIP 2 takes 3-channel images, got input_shape {input_shape}")
    for key in ("PIXEL_MEAN", "PIXEL_STD"):
        value = cfg.MODEL.get(key)
        if value is not None and [float(v) for v in value] != [PIXEL_VALUE] * 3:
            raise ValueError(f"MODEL.{key} must be [127.5, 127.5, 127.5] for FG-CLIP 2 (it expects "
                             f"(x - 127.5) / 127.5), got {list(value)}")
    if not c.CHECKPOINT or not Path(c.CHECKPOINT).is_dir():
        raise FileNotFoundError(f"FG-CLIP 2 checkpoint directory not found: {c.CHECKPOINT!r}; set "
                                "MODEL.FGCLIP2.CHECKPOINT to a folder with config.json + model.safetensors")
    input_cfg = cfg.get("INPUT")
    return _backbone_class()(
        c.CHECKPOINT, out_indices=list(c.OUT_INDICES) or None, frozen=bool(c.FROZEN),
        trainable_blocks=int(c.TRAINABLE_BLOCKS), out_features=list(c.OUT_FEATURES) or None,
        input_format=input_cfg.get("FORMAT", "RGB") if input_cfg is not None else "RGB")


def register():
    """Register :func:`build_fgclip2_backbone` in detectron2's ``BACKBONE_REGISTRY`` (once; it is
    also done on import when detectron2 is installed). ImportError with an install hint without
    detectron2. Returns the registered builder."""
    registry = _require("detectron2.modeling").BACKBONE_REGISTRY
    try:
        return registry.get(build_fgclip2_backbone.__name__)  # fvcore's Registry refuses duplicates
    except KeyError:
        registry.register(build_fgclip2_backbone)
        return build_fgclip2_backbone


if detectron2_available():
    register()
