"""FG-CLIP 2 pretraining as an MMEngine model: stage 1 (global) and stage 2 (all losses; official
``FG_CLIP2_Model.forward``, FG2:L281-537)."""
from __future__ import annotations

import contextlib
import json
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from torch import nn

from ..model import FGCLIP2, FGCLIP2Config
from .losses import (DEFAULT_LOSS_WEIGHTS, BatchHardContrastiveLoss, CrossModalRankLoss, HardNegativeLoss,
                     RegionTextContrastiveLoss, SigmoidContrastiveLoss, TextIntraModalLoss, hard_negative_logits,
                     weighted_losses)
STAGE1_UNUSED = ("dense_feature_head", "boxtext_head")  # frozen in stage 1 so DDP sees no unused grads


def build_fgclip2(checkpoint: str | None = None, preset: str | None = None,
                  config_overrides: dict | None = None) -> FGCLIP2:
    """FG-CLIP 2 from an FG-CLIP 2 checkpoint, from a SigLIP 2 NaFlex checkpoint (converted on the fly
    by ``FGCLIP2.from_pretrained``, as the official ``--from_siglip2``), or from a preset (random
    init, e.g. for the synthetic world)."""
    if (checkpoint is None) == (preset is None):
        raise ValueError("give exactly one of checkpoint= (a directory) or preset= (e.g. 'tiny')")
    if preset is not None:
        return FGCLIP2(FGCLIP2Config.preset(preset, **(config_overrides or {})))
    return FGCLIP2.from_pretrained(checkpoint)


def encode_extra_state(data: dict) -> torch.Tensor:
    return torch.tensor(list(json.dumps(data).encode("utf-8")), dtype=torch.uint8)


def decode_extra_state(state: torch.Tensor) -> dict:
    return json.loads(bytes(state.tolist()).decode("utf-8"))


@MODELS.register_module()
class FGCLIP2Pretrainer(BaseModel):
    """Wraps :class:`FGCLIP2` (as ``self.fgclip``) with the pretraining losses.

    Args:
        checkpoint / preset / config_overrides: where the weights come from (:func:`build_fgclip2`).
        stage: 1 = global sigmoid loss on long and short captions; 2 = every loss.
        loss_weights: overrides of the official ``DEFAULT_LOSS_WEIGHTS`` (effective per-term weights).
        sigmoid_mode: "reduce" (official) or "gather": how other ranks' texts become negatives.
        fine_grained_scale, hard_negative_scale: initial log-temperatures of L_FGV and the hard
            negative losses (official ln 100, trainable, not part of the released checkpoint).
        copy_dense_head: copy the MAP head into ``dense_feature_head`` at start (the official
            internal script does it at the start of every run).
        frozen: parameter-name prefixes of ``fgclip`` to freeze, e.g. ``("text_model",)``.
        grad_checkpointing: recompute encoder blocks in backward (memory for time).
        amp_dtype: e.g. "bfloat16": autocast the forward (works on CPU and GPU).
        unique_texts: encode each distinct token row of a batch once and share its embedding (the
            text tower reads each text alone, without dropout, so the losses and gradients are the
            same up to float rounding; worlds with a small vocabulary repeat most region texts).
    """

    SUMMED_STATS = ("replaced_samples", "hard_dropped", "nonfinite_ranks")

    def __init__(self, checkpoint=None, preset=None, config_overrides=None, stage=2, loss_weights=None,
                 sigmoid_mode="reduce", fine_grained_scale=math.log(100), hard_negative_scale=math.log(100),
                 tic_threshold=0.95, tic_topk=10, copy_dense_head=False, frozen=(), grad_checkpointing=False,
                 amp_dtype=None, unique_texts=True, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.stage = stage
        self.source_checkpoint = checkpoint  # its tokenizer files go along on export
        self.fgclip = build_fgclip2(checkpoint, preset, config_overrides).train()
        if copy_dense_head:
            self.fgclip.dense_feature_head.load_state_dict(self.fgclip.vision_model.head.state_dict())
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.logit_scale_finegrained = nn.Parameter(torch.tensor(float(fine_grained_scale)))
        self.logit_scale_hardneg = nn.Parameter(torch.tensor(float(hard_negative_scale)))
        self.sigmoid_loss = SigmoidContrastiveLoss(mode=sigmoid_mode)
        self.fgv_loss = RegionTextContrastiveLoss()
        self.tic_loss = TextIntraModalLoss(threshold=tic_threshold, topk=tic_topk)
        self.fgt_loss = HardNegativeLoss()
        self.hc_loss = BatchHardContrastiveLoss()
        self.cmr_loss = CrossModalRankLoss()
        # bad samples replaced so far on all ranks; a buffer, so it survives --resume
        self.register_buffer("replaced_samples_total", torch.zeros((), dtype=torch.long))
        self.amp_dtype = getattr(torch, amp_dtype) if isinstance(amp_dtype, str) else amp_dtype
        self.unique_texts = bool(unique_texts)
        self.fgclip.vision_model.encoder.grad_checkpointing = grad_checkpointing
        self.fgclip.text_model.encoder.grad_checkpointing = grad_checkpointing
        prefixes = tuple(frozen) + (STAGE1_UNUSED if stage == 1 else ())
        for name, p in self.fgclip.named_parameters():
            if name.startswith(prefixes):
                p.requires_grad_(False)
        if stage == 1:
            self.logit_scale_finegrained.requires_grad_(False)
            self.logit_scale_hardneg.requires_grad_(False)

    # The FG-CLIP 2 config travels inside runner checkpoints, so tools/export_checkpoint.py can write
    # the official layout from a checkpoint alone. JSON bytes in a uint8 tensor: MMEngine broadcasts
    # every state_dict value, and weights-only loading accepts tensors.
    def get_extra_state(self) -> torch.Tensor:
        return encode_extra_state({"fgclip2_config": self.fgclip.config.to_dict(),
                                   "source_checkpoint": self.source_checkpoint})

    def set_extra_state(self, state: torch.Tensor) -> None:
        saved = decode_extra_state(state).get("fgclip2_config", {})
        hidden = saved.get("vision_config", {}).get("hidden_size")
        if hidden is not None and hidden != self.fgclip.config.embed_dim:
            raise ValueError(f"checkpoint was trained with another FG-CLIP 2 architecture (vision hidden_size "
                             f"{hidden} vs {self.fgclip.config.embed_dim})")

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        device = next(self.parameters()).device.type
        return torch.autocast(device_type=device, dtype=self.amp_dtype)

    def forward(self, images, text_long, text_short, region_texts=None, region_boxes=None,
                hard_texts=None, hard_boxes=None, stats=None, mode="loss"):
        if mode != "loss":
            raise ValueError(f"FGCLIP2Pretrainer only computes losses (mode='loss'), got mode={mode!r}; "
                             "use FGCLIP2 (tools/export_checkpoint.py) for inference")
        with self._autocast():
            terms = self._loss_terms(images, text_long, text_short, region_texts, region_boxes,
                                     hard_texts, hard_boxes)
        bad = [k for k, v in terms.items() if not torch.isfinite(v).all()]
        diagnostics = self._data_counts({**(stats or {}), "nonfinite_ranks": float(bool(bad))})
        nonfinite_ranks = int(diagnostics.pop("nonfinite_ranks"))
        if nonfinite_ranks:  # summed over ranks: every rank stops together, none waits in a collective
            where = (f"term(s) {bad} ({ {k: float(terms[k]) for k in bad} })" if bad else
                     f"term(s) on {nonfinite_ranks} other rank(s)")
            raise FloatingPointError(
                f"non-finite pretraining loss {where}; training stops here so no checkpoint is written from a "
                "diverged model (the last saved one is intact). Lower the learning rate, enable gradient clipping "
                "or check the data of this step.")
        diagnostics["cmr_threshold"] = self.cmr_loss.threshold.detach().clone()
        return weighted_losses({k: v.float() for k, v in terms.items()}, self.loss_weights, diagnostics)

    @torch.no_grad()
    def _data_counts(self, stats: dict) -> dict:
        """The collate's per-batch counts summed over ranks (MMEngine logs rank 0's values only),
        plus the running total of replaced samples."""
        out = {k: torch.tensor(float(v)) for k, v in stats.items() if k not in self.SUMMED_STATS}
        counts = torch.tensor([float(stats.get(k, 0)) for k in self.SUMMED_STATS],
                              device=self.replaced_samples_total.device)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(counts)
        out.update({k: v.cpu() for k, v in zip(self.SUMMED_STATS, counts)})
        if self.training:
            self.replaced_samples_total += int(counts[0])
        out["replaced_samples_total"] = self.replaced_samples_total.detach().float().cpu()
        return out

    def _encode_text(self, input_ids: torch.Tensor, kind: str) -> torch.Tensor:
        if not self.unique_texts or input_ids.shape[0] < 2:
            return self.fgclip.encode_text(input_ids, kind)
        distinct, inverse = torch.unique(input_ids, dim=0, return_inverse=True)
        if distinct.shape[0] == input_ids.shape[0]:
            return self.fgclip.encode_text(input_ids, kind)
        return self.fgclip.encode_text(distinct, kind)[inverse]

    def _loss_terms(self, images, text_long, text_short, region_texts, region_boxes, hard_texts, hard_boxes):
        fg = self.fgclip
        feats = fg.vision_features(images, with_dense=self.stage == 2)
        img = F.normalize(feats.image_embeds, dim=-1)
        terms = {
            "global_long": self.sigmoid_loss(img, self._encode_text(text_long, "long"), fg.logit_scale,
                                             fg.logit_bias),
            "global_short": self.sigmoid_loss(img, self._encode_text(text_short, "short"), fg.logit_scale,
                                              fg.logit_bias),
        }
        if self.stage == 1:
            return terms
        regions = torch.cat(fg.pool_regions(feats.dense_maps, region_boxes))
        n_hard, n_texts, length = hard_texts.shape
        # region and hard-negative texts share the box head: one pass over both
        box_texts = self._encode_text(torch.cat([region_texts, hard_texts.reshape(-1, length)]), "box")
        region_text, texts = box_texts.split([region_texts.shape[0], n_hard * n_texts])
        texts = texts.reshape(n_hard, n_texts, fg.config.embed_dim)
        terms["fgv"] = self.fgv_loss(regions, region_text, self.logit_scale_finegrained)
        terms["tic"] = self.tic_loss(region_text)
        hard_regions = torch.cat(fg.pool_regions(feats.dense_maps, hard_boxes))
        terms["fgt"] = self.fgt_loss(hard_regions, texts, self.logit_scale_hardneg)
        terms["hc"] = self.hc_loss(hard_regions, texts, self.logit_scale_hardneg)
        logits = hard_negative_logits(hard_regions, texts, self.logit_scale_hardneg)
        terms["cmr"] = self.cmr_loss(logits[:, 0], logits[:, 1:])
        return terms
