"""FG-CLIP 2 (arXiv 2510.10921) in plain PyTorch: the public model API (README "The model API")."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import check_boxes
from .checkpoint import (check_state_dict, read_state_dict, siglip2_source_config, siglip2_to_fgclip2_config,
                         siglip2_to_fgclip2_state_dict, write_state_dict)
from .config import FGCLIP2Config
from .layers import AttentionPoolingHead
from .text import TextTransformer
from .vision import VisionTransformer, unpack_maps

ImageBatch = torch.Tensor | list[torch.Tensor]


@dataclass
class VisionFeatures:
    """One encoder pass, everything downstream code needs from it."""
    grids: list[tuple[int, int]]  # (h, w) patch grid per image
    image_embeds: torch.Tensor | None  # (B, D) MAP-head output, not normalised
    dense_maps: list[torch.Tensor] | None  # (D, h, w) per image, dense head output, not normalised
    intermediates: list[list[torch.Tensor]]  # per requested block: (D, h, w) per image


def checkpoint_config(path: str | Path, keep_len: int = 20) -> FGCLIP2Config:
    """The :class:`FGCLIP2Config` of a checkpoint folder without reading its weights: ``config.json``
    of the official layout, or a SigLIP 2 NaFlex folder's config converted as ``from_pretrained``
    converts it (widths for detection heads come from here)."""
    siglip2 = siglip2_source_config(path)
    if siglip2 is not None:
        return FGCLIP2Config.from_dict(siglip2_to_fgclip2_config(siglip2, keep_len))
    return FGCLIP2Config.from_pretrained(path)


class FGCLIP2(nn.Module):
    def __init__(self, config: FGCLIP2Config):
        super().__init__()
        self.config = config
        dim, v = config.embed_dim, config.vision
        self.patch_size = v.patch_size
        self.logit_scale = nn.Parameter(torch.zeros(1))
        self.logit_bias = nn.Parameter(torch.zeros(1))
        self.text_model = TextTransformer(config.text)
        self.vision_model = VisionTransformer(config.vision)
        self.dense_feature_head = AttentionPoolingHead(dim, v.num_attention_heads, v.intermediate_size,
                                                       v.hidden_act, v.layer_norm_eps)
        self.longtext_head = nn.Linear(dim, dim)
        self.boxtext_head = nn.Linear(dim, dim)
        self._init_scratch_weights()

    def _init_scratch_weights(self) -> None:
        """From-scratch init (pretrained weights overwrite it): SigLIP's logit scale/bias
        (t = 10, b = -10, SigLIP paper), position tables N(0, 1/D). Not named ``init_weights``: MMEngine
        calls every child's ``init_weights()`` when training starts, which would reset loaded weights."""
        with torch.no_grad():
            self.logit_scale.fill_(math.log(10.0))
            self.logit_bias.fill_(-10.0)
            std = self.config.embed_dim ** -0.5
            for emb in (self.vision_model.embeddings.position_embedding,
                        self.text_model.embeddings.position_embedding,
                        self.text_model.embeddings.position_embedding_res,
                        self.text_model.embeddings.position_embedding_ori,
                        self.text_model.embeddings.token_embedding):
                nn.init.normal_(emb.weight, std=std)
            for head in (self.vision_model.head, self.dense_feature_head):
                nn.init.normal_(head.probe, std=std)

    # ------------------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32,
                        device: str | torch.device = "cpu", keep_len: int = 20) -> "FGCLIP2":
        """Loads ``config.json`` + ``model.safetensors`` (or shards) of the official layout, strictly.

        A SigLIP 2 NaFlex folder (``Siglip2Model``, ``model_type`` "siglip2") is converted on the
        fly, as the official ``--from_siglip2`` does (TRN:L557-564, docs/official_code.md): text
        positions stretched 64 -> 196 keeping the first ``keep_len``, text head copied into the box
        and long heads, MAP head into the dense head."""
        config = checkpoint_config(path, keep_len)
        state = read_state_dict(path)
        if siglip2_source_config(path) is not None:
            state = siglip2_to_fgclip2_state_dict(state, keep_len)
        with torch.device("meta"):
            model = cls(config)
        check_state_dict(model, state, source=str(path))
        model.load_state_dict(state, strict=True, assign=True)
        return model.to(device=device, dtype=dtype).eval()

    def save_pretrained(self, path: str | Path, max_shard_bytes: int | None = None) -> None:
        self.config.save(path)
        write_state_dict(path, self.state_dict(), max_shard_bytes=max_shard_bytes)

    # ----------------------------------------------------------------------------------- vision
    def vision_features(self, images: ImageBatch, out_indices: int | Sequence[int] = (),
                        with_global: bool = True, with_dense: bool = True) -> VisionFeatures:
        """Runs the vision tower once; returns what is asked for (see :class:`VisionFeatures`).
        ``out_indices``: encoder blocks whose maps to return, as timm's ``feature_take_indices``
        (an int n = the last n blocks; negatives count from the end; see ``layers.take_indices``)."""
        images = self._check_images(images)
        out = self.vision_model(images, out_indices)
        lengths = out.lengths
        image_embeds = self.vision_model.head.pool(out.tokens, lengths) if with_global else None
        dense = (unpack_maps(self.dense_feature_head.dense(out.tokens, lengths), out.grids)
                 if with_dense else None)
        intermediates = [unpack_maps(t, out.grids) for t in out.intermediates]
        return VisionFeatures(out.grids, image_embeds, dense, intermediates)

    def encode_image(self, images: ImageBatch) -> torch.Tensor:
        """(B, D) L2-normalised global embeddings (MAP head)."""
        feats = self.vision_features(images, with_dense=False)
        return F.normalize(feats.image_embeds, dim=-1)

    def encode_dense(self, images: ImageBatch) -> list[torch.Tensor]:
        """Per image a (D, h, w) map of the dense head, L2-normalised at every location."""
        feats = self.vision_features(images, with_global=False)
        return [F.normalize(m, dim=0) for m in feats.dense_maps]

    def encode_regions(self, images: ImageBatch, boxes: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per image an (N_i, D) tensor: RoIAlign 1x1 (aligned, adaptive sampling) on the
        *unnormalised* dense map, then L2. ``boxes``: per image (N_i, 4) xyxy in pixels of the
        (processed) image. The encoder runs once per image, whatever the number of boxes."""
        images = self._check_images(images)
        if len(boxes) != len(images):
            raise ValueError(f"got {len(boxes)} box lists for {len(images)} images")
        boxes = [check_boxes(b, i) for i, b in enumerate(boxes)]  # fail before the encoder runs
        feats = self.vision_features(images, with_global=False)
        return self.pool_regions(feats.dense_maps, boxes)

    def pool_regions(self, dense_maps: list[torch.Tensor], boxes: list[torch.Tensor]) -> list[torch.Tensor]:
        """RoIAlign(1x1, aligned=True, adaptive sampling) of pixel boxes on (D, h, w) maps, then L2.

        A box maps to the grid by x / patch_size (= x / W * w). Zero-width or zero-height boxes get
        zero vectors, as in the official RoIAlign; parts outside the image read zeros."""
        boxes = [check_boxes(b, i) for i, b in enumerate(boxes)]
        from mmcv.ops import roi_align  # torchvision's roi_align has no wheel for this torch

        out = []
        for fmap, b in zip(dense_maps, boxes):
            b = b.to(device=fmap.device, dtype=torch.float32)
            if len(b) == 0:
                out.append(fmap.new_zeros(0, fmap.shape[0]))
                continue
            rois = torch.cat([b.new_zeros(len(b), 1), b], dim=1)
            # mmcv's CPU kernel silently misreads non-contiguous inputs (pinned in tests/model/test_model.py).
            pooled = roi_align(fmap[None].float().contiguous(), rois.contiguous(), (1, 1),
                               1.0 / self.patch_size, 0, "avg", True)
            out.append(F.normalize(pooled.flatten(1), dim=-1).to(fmap.dtype))
        return out

    # ------------------------------------------------------------------------------------- text
    def encode_text(self, input_ids: torch.Tensor, kind: str = "short",
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) L2-normalised text embeddings. ``kind``: "short" (SigLIP head, 64 tokens),
        "box" (``boxtext_head``, 64) or "long" (``longtext_head``, 196 tokens)."""
        length = self.text_model.expected_length(kind)
        if input_ids.dim() != 2 or input_ids.shape[1] != length:
            raise ValueError(f"kind={kind!r} needs input_ids of shape (B, {length}) (text is pooled at "
                             f"the last position, so padding must be exact); got {tuple(input_ids.shape)}")
        vocab = self.config.text.vocab_size
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
            raise ValueError(f"token ids must be in [0, {vocab}); got range "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]: tokenizer/checkpoint mismatch?")
        if input_ids.shape[0] == 0:  # e.g. a batch without regions
            return self.boxtext_head.weight.new_zeros(0, self.config.embed_dim)
        pooled = self.text_model(input_ids, kind, attention_mask)
        if kind == "box":
            pooled = self.boxtext_head(pooled)
        elif kind == "long":
            pooled = self.longtext_head(pooled)
        return F.normalize(pooled, dim=-1)

    def logits(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """SigLIP logits cos * exp(logit_scale) + logit_bias; sigmoid of them is the match probability."""
        return image_embeds @ text_embeds.t() * self.logit_scale.exp() + self.logit_bias

    # ------------------------------------------------------------------------------- validation
    def _check_images(self, images: ImageBatch) -> list[torch.Tensor]:
        if isinstance(images, torch.Tensor):
            if images.dim() != 4:
                raise ValueError(f"images tensor must be (B, 3, H, W); got shape {tuple(images.shape)}")
            images = list(images)
        if not images:
            raise ValueError("no images given")
        p, c = self.patch_size, self.config.vision.num_channels
        for i, img in enumerate(images):
            if not isinstance(img, torch.Tensor) or not img.is_floating_point():
                raise TypeError(f"image {i}: expected a float tensor normalised to [-1, 1] "
                                "(use FGCLIP2ImageProcessor)")
            if img.dim() != 3 or img.shape[0] != c:
                raise ValueError(f"image {i}: expected shape ({c}, H, W); got {tuple(img.shape)}")
            h, w = img.shape[1:]
            if h == 0 or w == 0 or h % p or w % p:
                raise ValueError(f"image {i}: H and W must be positive multiples of {p}; got {h}x{w} "
                                 "(FGCLIP2ImageProcessor produces such sizes)")
        return images
