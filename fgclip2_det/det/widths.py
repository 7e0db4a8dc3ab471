"""Detection widths that follow the backbone checkpoint.

A frozen FG-CLIP 2 fixes two widths of the detector: the channels of the block maps the neck reads
(the ViT width) and the dimension of the text embeddings the box head classifies against (the same
width, ``FGCLIP2Config.embed_dim``). They are read from the checkpoint's ``config.json`` before the
neck and heads are built, as detectron2 builds heads from the backbone's ``output_shape()``
(``detectron2/modeling/backbone/backbone.py``), so a config for another model size changes only
``model.backbone.checkpoint``.

* A width left unset (None or absent) is filled from the checkpoint.
* A width that is set must agree with the checkpoint; otherwise :class:`WidthError` names the
  config key, its value and the checkpoint's width.

Keys: ``in_channels`` of the neck that reads the backbone maps (the neck itself, or the first of a
``SequentialNeck``): an int for ``SimplePyramid``, one entry per backbone map for MMDetection necks
such as ``FPN`` or ``ChannelMapper``; ``embed_dim`` of the RoI head's ``CosineBBoxHead``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from ..model.fgclip2 import checkpoint_config
from .backbone import FGCLIP2ViT

LIST_NECKS = ("FPN", "ChannelMapper")   # in_channels = one width per backbone map


class WidthError(ValueError):
    """A width set in the config disagrees with the backbone checkpoint."""


class BackboneShape(NamedTuple):
    """What the parts after an :class:`~.backbone.FGCLIP2ViT` see of it."""

    channels: int    # width of every block map and of the dense map (= text embedding width)
    num_outs: int    # number of block maps (``out_indices`` entries)
    checkpoint: str


def backbone_output_shape(backbone: Mapping) -> BackboneShape | None:
    """:class:`BackboneShape` of an ``FGCLIP2ViT`` config, from its checkpoint's ``config.json``.

    None when the config is not an ``FGCLIP2ViT``, or its checkpoint folder does not exist (the
    backbone, built first, then reports the missing folder with its config key)."""
    if _type_name(backbone) != "FGCLIP2ViT":
        return None
    checkpoint = backbone.get("checkpoint")
    if checkpoint is None or not Path(checkpoint).is_dir():
        return None
    config = checkpoint_config(checkpoint)
    indices = FGCLIP2ViT._resolve_out_indices(backbone.get("out_indices"), config.vision.num_hidden_layers)
    return BackboneShape(config.embed_dim, len(indices), str(checkpoint))


def fill_widths(backbone: Mapping, neck: Mapping | None, roi_head: Mapping | None
                ) -> tuple[Any, Any]:
    """Copies of ``neck`` and ``roi_head`` with the widths of ``backbone``'s checkpoint (module doc).

    Raises :class:`WidthError` for a set width that disagrees with the checkpoint."""
    neck, roi_head = copy.deepcopy(neck), copy.deepcopy(roi_head)
    shape = backbone_output_shape(backbone)
    if shape is None:
        return neck, roi_head
    reader, key = _backbone_reader(neck)
    if reader is not None:
        kind, value = _type_name(reader), reader.get("in_channels")
        if kind in LIST_NECKS or isinstance(value, (list, tuple)):
            _fill(reader, "in_channels", [shape.channels] * shape.num_outs, f"{key}.in_channels", shape)
        elif kind == "SimplePyramid" or "in_channels" in reader:
            _fill(reader, "in_channels", shape.channels, f"{key}.in_channels", shape)
    head = roi_head.get("bbox_head") if roi_head is not None else None
    if isinstance(head, Mapping) and (_type_name(head) == "CosineBBoxHead" or "embed_dim" in head):
        _fill(head, "embed_dim", shape.channels, "model.roi_head.bbox_head.embed_dim", shape)
    return neck, roi_head


def _backbone_reader(neck: Mapping | None) -> tuple[Any, str]:
    """The neck config that receives the backbone maps and its config key."""
    if neck is None:
        return None, ""
    if _type_name(neck) == "SequentialNeck" and neck.get("necks"):
        return neck["necks"][0], "model.neck.necks[0]"
    return neck, "model.neck"


def _type_name(cfg: Mapping) -> str:
    kind = cfg.get("type")
    return kind.split(".")[-1] if isinstance(kind, str) else getattr(kind, "__name__", "")


def _fill(cfg: Any, name: str, width: int | list[int], key: str, shape: BackboneShape) -> None:
    value = cfg.get(name)
    if value is None:
        cfg[name] = width
        return
    given = list(value) if isinstance(value, (list, tuple)) else value
    if given != width:
        raise WidthError(
            f"{key}={value!r} disagrees with the backbone checkpoint {shape.checkpoint!r}, whose width is "
            f"{shape.channels} ({shape.num_outs} block maps): leave {key} unset (None) to follow the "
            "checkpoint, or set model.backbone.checkpoint to a model of that width")
