"""FG-OVD scoring, as official fgclip2/eval/fgovd_bbox_roi.py: each box against its own captions,
positive first.

Captions differ per box, so there is no shared vocabulary: per data sample, ``box_captions`` (meta
info; one list per GT box, index 0 = the positive) are tokenised lower-cased, 64 tokens, no
template, and encoded with the ``box`` head; the score is softmax(100 * cos) over that box's list.
``pred_instances.caption_scores`` (N, K) holds them; ``labels`` / ``scores`` are the top-1.

With a vocabulary (``set_vocabulary``, the contract of every model here), a sample without
``box_captions`` ranks each box against the vocabulary's names instead, by the same text rule
(lower-cased, no template): the ranker then serves as a box classifier with FG-OVD's text rule.

Captions carry the attention mask exactly when the checkpoint's tokenizer returns one
(``text_attention_mask='auto'``), as the official script passes the tokenizer's whole output to
``get_text_features``; True / False force it either way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from ..model import FGCLIP2Tokenizer
from ..model.tokenizer import check_attention_mask_option, resolve_attention_mask
from ..openvocab import BOX_TEMPERATURE, load_fgclip2_tower, per_region_logits, zero_shot_logits
from .region_model import FGCLIP2RegionModel


@MODELS.register_module()
class FGCLIP2CaptionRanker(FGCLIP2RegionModel):
    """Args:
        backbone: ``FGCLIP2ViT`` config.
        text_checkpoint: checkpoint of the (frozen) text tower; None -> the backbone's.
        lowercase: lower-case captions (official FG-OVD: yes).
        temperature: softmax temperature (official 100).
        text_attention_mask: mask pad tokens in the text encoder: 'auto' (default) = exactly when the
            checkpoint's tokenizer returns an attention mask (official FG-OVD), True / False force it
            (see ``TextClassifier``); ``use_text_attention_mask`` is the resolved choice.
        classes: optional vocabulary for samples without ``box_captions`` (module doc).
    """

    def __init__(self, backbone: dict, text_checkpoint: str | None = None, lowercase: bool = True,
                 temperature: float = BOX_TEMPERATURE, text_attention_mask: bool | str = "auto",
                 classes=None, data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(backbone, temperature, data_preprocessor, init_cfg)
        checkpoint = text_checkpoint or self.backbone.checkpoint
        self.text_encoder = load_fgclip2_tower(checkpoint, "text", "model.text_checkpoint")
        self.tokenizer = FGCLIP2Tokenizer.from_pretrained(checkpoint, lowercase=lowercase)
        self.text_attention_mask = check_attention_mask_option(text_attention_mask, "text_attention_mask")
        self.use_text_attention_mask = resolve_attention_mask(text_attention_mask, self.tokenizer)
        self.configure_text(None, checkpoint, templates_en=None, lowercase_en=lowercase,
                            attention_mask=text_attention_mask)
        self.register_buffer("class_embeds", torch.zeros(0, self.backbone.embed_dim), persistent=False)
        if classes is not None:
            self.set_vocabulary(classes)

    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        self.class_embeds = class_embeds.to(self.class_embeds.device)

    def train(self, mode: bool = True) -> "FGCLIP2CaptionRanker":
        super().train(mode)
        self.text_encoder.eval()  # frozen
        return self

    def caption_embeddings(self, sample, num_boxes: int) -> torch.Tensor:
        """(N, K, D) L2-normalised caption embeddings of one sample; K must be equal per box."""
        where = sample.metainfo.get("img_path", sample.metainfo.get("img_id", "<image>"))
        captions = sample.metainfo.get("box_captions")
        if captions is None or len(captions) != num_boxes:
            raise ValueError(f"{where}: expected 'box_captions' with one caption list per box ({num_boxes}), "
                             f"got {None if captions is None else len(captions)} (add 'box_captions' to "
                             "PackDetInputs meta_keys)")
        lengths = {len(c) for c in captions}
        if len(lengths) > 1 or 0 in lengths:
            raise ValueError(f"{where}: every box needs the same, non-zero number of captions; got {sorted(lengths)}")
        flat = [text for per_box in captions for text in per_box]
        if not flat:
            return torch.zeros(num_boxes, 0, self.backbone.embed_dim)
        device = next(self.text_encoder.parameters()).device
        tokens = {k: v.to(device) for k, v in self.tokenizer.encode(
            flat, kind="box", attention_mask=self.use_text_attention_mask).items()}
        with torch.no_grad():
            embeds = self.text_encoder.encode_text(tokens["input_ids"], "box", tokens.get("attention_mask"))
        return embeds.reshape(num_boxes, len(captions[0]), -1)

    def caption_logits(self, regions: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        return per_region_logits(regions, captions, self.temperature)

    def sample_logits(self, sample, regions: torch.Tensor) -> torch.Tensor:
        """(N, K) logits of one sample's boxes: against their captions, else the vocabulary."""
        if sample.metainfo.get("box_captions") is None and self.classes is not None:
            return zero_shot_logits(regions, self.class_embeds, self.temperature)
        captions = self.caption_embeddings(sample, len(regions)).to(regions.device)
        return self.caption_logits(regions, captions)

    def predict(self, inputs: torch.Tensor, data_samples, rescale: bool = True):
        for sample, regions in zip(data_samples, self.region_embeddings(inputs, data_samples)):
            probs = self.sample_logits(sample, regions).softmax(dim=-1)
            inst = self.instances(sample, probs, rescale)
            inst.caption_scores = probs
            sample.pred_instances = inst
        return data_samples

    def loss(self, inputs: torch.Tensor, data_samples) -> dict[str, torch.Tensor]:
        """Cross-entropy with the positive caption (index 0) as target, for fine-tuning."""
        losses = []
        for sample, regions in zip(data_samples, self.region_embeddings(inputs, data_samples)):
            captions = self.caption_embeddings(sample, len(regions)).to(regions.device)
            logits = self.caption_logits(regions, captions)  # K may differ between samples
            target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
            losses.append(F.cross_entropy(logits, target, reduction="none"))
        return {"loss_caption": torch.cat(losses).mean()}
