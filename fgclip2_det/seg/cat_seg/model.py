"""CAT-Seg on FG-CLIP 2: open-vocabulary semantic segmentation by cost aggregation, with both towers
fine-tuned (Cho et al., "CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic Segmentation",
CVPR 2024; cvlab-kaist/CAT-Seg, cat_seg/cat_seg_model.py). Registered in MMDetection's ``MODELS`` as
``FGCLIP2CATSeg``.

Pipeline (per image, each view resized to ``clip_resolution``, 384 x 384 -> a 24 x 24 grid):

1. the FG-CLIP 2 vision tower gives the dense map (its dense head: every patch queries the last
   block's tokens; text-aligned) and two block maps, an earlier and a later one (``out_indices``);
2. class embeddings: FG-CLIP 2 **box-text** embeddings (``boxtext_head``) of the prompt
   ``"a photo of a {} in the scene"`` (CAT-Seg's single prompt for B/16 and L/14). Box texts, not
   short texts, because the dense head is what FG-CLIP 2's region stage aligns with box texts
   (RoIAlign of the dense map against ``boxtext_head`` embeddings), while short texts are aligned
   with the global MAP embedding, a different head; the cost volume compares dense features, so it
   takes the text side they were trained against (as the project's box classifier and
   training-free segmentation do);
3. :class:`~.aggregator.CATSegAggregator`: cost volume cos(dense, text), Swin spatial aggregation with
   appearance guidance, linear class aggregation with text guidance, the guided upsampling decoder
   (earlier block -> first x2 step, later block -> second);
4. training: per-class **binary cross-entropy** on the logits upsampled to the crop (below);
   inference: sigmoid probabilities, ``whole`` (the image resized to ``clip_resolution``) or
   ``slide`` (windows of ``crop_size`` every ``stride``, on the image resized to ``resize`` if set,
   probabilities averaged where windows overlap, then averaged with a global view of the whole
   image, as CAT-Seg's ``inference_sliding_window``: 384 windows, overlap 0.333, 640 x 640, global view).

Fine-tuning (``finetune``, :mod:`.finetune`): 'attention' trains the q/v projection weights of both
towers (position tables too with ``finetune_position_embeddings``), 'full' every transformer block, 'none' nothing. With a trainable text tower
the class embeddings are recomputed from the tokens in every training forward (their gradients
reach the text tower); in eval mode they are computed once and cached until the weights change
(a training step or a checkpoint load). With ``finetune='none'`` the text tower is not kept at all:
the embeddings come from :class:`~fgclip2_det.openvocab.TextClassifier` and its disk cache.

Loss: ``mean BCE(logit, one_hot)`` over the seen classes and the counted pixels, as CAT-Seg
(``binary_cross_entropy_with_logits`` of the logits against the one-hot labels). Counted pixels: the
image's real region (batch padding never counts); pixels labelled with a *novel* class never count
(and novel classes are out of the training forward altogether: the class attention never sees their
names); ignore-labelled pixels count as negatives for every class with ``ignore_as_negative=True``
(CAT-Seg: its targets are zero there and its mean runs over all pixels), else they are left out.

Data-sample conventions follow ``FGCLIP2Segmentor``: ``gt_sem_seg`` in, ``seg_logits`` (per-class
logit of the (averaged) sigmoid probability) and ``pred_sem_seg`` out, ``ignore_index``;
``OpenVocabularyMixin`` for ``set_vocabulary`` / ``DatasetVocabularyHook``.

Memory (``aggregator.class_chunk``, ``with_cp``): see :mod:`.aggregator` and :mod:`.memory`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import PixelData
from mmdet.registry import MODELS

from ...model import FGCLIP2Tokenizer
from ...model.layers import take_indices
from ...model.tokenizer import resolve_attention_mask
from ...openvocab import OpenVocabularyMixin, TextClassifier, Vocabulary, load_templates, load_fgclip2_tower
from ...openvocab.vocabulary import novel_class_mask
from .aggregator import CATSegAggregator, _as_pair
from .finetune import FINETUNE_MODES, apply_trainable, split_dense_head, trainable_names
from ..label_maps import checked_label_map

#: CAT-Seg's prompt for its B/16 and L/14 models (``PROMPT_ENSEMBLE_TYPE: "single"``).
CATSEG_TEMPLATES = ("A photo of a {} in the scene",)


def default_guidance_layers(depth: int) -> tuple[int, int]:
    """The blocks CAT-Seg taps for the decoder, scaled by depth: (3, 7) of 12 (B/16), (7, 15) of 24
    (L/14); blocks ~depth/3 and ~2*depth/3, e.g. (8, 17) of so400m's 27 ((0, 1) of a 2-block test model)."""
    earlier = max(int(depth / 3 + 0.5) - 1, 0)
    later = max(int(2 * depth / 3 + 0.5) - 1, earlier + 1)
    if later >= depth:
        raise ValueError(f"no default guidance blocks for a {depth}-block encoder; set backbone.out_indices")
    return earlier, later


@MODELS.register_module()
class FGCLIP2CATSeg(OpenVocabularyMixin, BaseModel):
    """Args:
        backbone: ``FGCLIP2ViT`` config (``checkpoint``; ``out_indices`` = the earlier and the later
            guidance block, increasing, default :func:`default_guidance_layers`). ``frozen`` follows
            ``finetune`` and may be left out.
        aggregator: :class:`CATSegAggregator` arguments (widths of the towers filled in).
        text_classifier: text options (:class:`TextClassifier` arguments): ``kind`` 'box' (default) or
            'short'; ``templates_en`` default :data:`CATSEG_TEMPLATES`, one cost channel per template;
            ``checkpoint`` defaults to the backbone's.
        finetune: 'attention' (QV), 'full' or 'none' (:mod:`.finetune`).
        finetune_position_embeddings: train the position tables too ('attention' / 'full'); False as
            CAT-Seg's released code, whose filter never reaches CLIP's position tables (:mod:`.finetune`).
        clip_resolution: (h, w) every view is resized to (CAT-Seg: the CLIP resolution, 384 for /16).
        with_cp: gradient checkpointing of both towers' blocks and of the aggregator's class chunks.
        ignore_as_negative: ignore-labelled pixels are negatives of every class (CAT-Seg) or left out.
        test_cfg: ``dict(mode='whole')`` or ``dict(mode='slide', crop_size=(h, w), stride=(h, w),
            resize=(h, w) or None, global_view=True, view_batch=None)``; both take ``pooling_size``,
            the class-aggregation pooling at test time (CAT-Seg evaluates with (1, 1)).
        ignore_index: label of pixels without a class.
    """

    def __init__(self, backbone: dict, aggregator: dict | None = None, text_classifier: dict | None = None,
                 finetune: str = "attention", finetune_position_embeddings: bool = False,
                 clip_resolution: int | Sequence[int] = (384, 384), with_cp: bool = False,
                 ignore_as_negative: bool = True, classes: Vocabulary | None = None, test_cfg: dict | None = None,
                 ignore_index: int = 255, data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {finetune!r}")
        self.finetune = finetune
        self.backbone = self._build_backbone(dict(backbone), finetune)
        self.clip_resolution = _as_pair(clip_resolution)
        patch = self.backbone.patch_size
        if self.clip_resolution[0] % patch or self.clip_resolution[1] % patch:
            raise ValueError(f"clip_resolution {self.clip_resolution} must be a multiple of the patch size {patch}")
        split_dense_head(self.backbone.fgclip2)
        self.vision_trainable = trainable_names(self.backbone.fgclip2, "vision", finetune, finetune_position_embeddings)
        apply_trainable(self.backbone.fgclip2, self.vision_trainable)

        self.configure_text(text_classifier, self.backbone.checkpoint, kind="box", templates_en=CATSEG_TEMPLATES)
        if self.text_cfg["kind"] not in ("box", "short"):
            raise ValueError(f"text_classifier.kind must be 'box' or 'short', got {self.text_cfg['kind']!r}")
        templates = self.text_cfg["templates_en"]
        self.templates = (load_templates() if templates == "default" else tuple(templates or ("{}",)))
        self.text_tower = None
        self.text_trainable: list[str] = []
        if finetune != "none":
            self.text_tower = load_fgclip2_tower(self.text_cfg["checkpoint"], "text",
                                                 "model.text_classifier.checkpoint")
            self.text_trainable = trainable_names(self.text_tower, "text", finetune, finetune_position_embeddings)
            apply_trainable(self.text_tower, self.text_trainable)

        dim = self.backbone.embed_dim
        self.aggregator = CATSegAggregator(**{"embed_dim": dim, "guidance_width": dim,
                                              "prompt_channels": len(self.templates), **dict(aggregator or {})})
        self.with_cp = bool(with_cp)
        self.aggregator.with_cp = self.with_cp
        self.backbone.fgclip2.vision_model.encoder.grad_checkpointing = self.with_cp
        if self.text_tower is not None:
            self.text_tower.text_model.encoder.grad_checkpointing = self.with_cp
        self.ignore_as_negative = bool(ignore_as_negative)
        self.test_cfg = dict(test_cfg or {"mode": "whole"})
        if self.test_cfg.get("mode", "whole") not in ("whole", "slide"):
            raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {self.test_cfg.get('mode')!r}")
        self.ignore_index = int(ignore_index)
        p = len(self.templates)
        self.register_buffer("class_embeds", torch.zeros(0, p, dim), persistent=False)
        self.register_buffer("novel_mask", torch.zeros(0, dtype=torch.bool), persistent=False)
        # The vocabulary's texts as tokens (trainable text tower only): one row per (template, class, name).
        self.register_buffer("text_ids", torch.zeros(0, 0, dtype=torch.long), persistent=False)
        self.register_buffer("text_mask", torch.zeros(0, 0, dtype=torch.long), persistent=False)
        self.register_buffer("text_class", torch.zeros(0, dtype=torch.long), persistent=False)
        self.register_buffer("text_prompt", torch.zeros(0, dtype=torch.long), persistent=False)
        self._text_stale = False
        self._tokenizer = None
        if classes is not None:
            self.set_vocabulary(classes)

    @staticmethod
    def _build_backbone(cfg: dict, finetune: str):
        frozen = finetune == "none"
        if cfg.get("frozen", frozen) != frozen:
            raise ValueError(f"backbone.frozen={cfg['frozen']} contradicts finetune={finetune!r}; leave it out")
        if cfg.get("trainable_blocks"):
            raise ValueError("backbone.trainable_blocks does not apply here: finetune chooses what trains")
        if not cfg.get("with_dense", True):
            raise ValueError("CAT-Seg needs the backbone's dense map (with_dense=True)")
        wanted = cfg.get("out_indices")
        cfg.update(frozen=frozen, with_dense=True, out_indices=() if wanted is None else wanted)
        backbone = MODELS.build(cfg)
        depth = backbone.fgclip2.config.vision.num_hidden_layers
        taps = default_guidance_layers(depth) if wanted is None else take_indices(wanted, depth)
        if len(taps) != 2 or not taps[0] < taps[1]:
            raise ValueError(f"backbone.out_indices must be two increasing blocks (the earlier one guides the first "
                             f"x2 decoder step, the later one the second), got {wanted!r}")
        backbone.out_indices = tuple(taps)
        return backbone

    # ---------------------------------------------------------------------------- vocabulary
    @property
    def text_is_trainable(self) -> bool:
        return self.text_tower is not None and bool(self.text_trainable)

    def set_vocabulary(self, classes: Vocabulary, novel_classes: Sequence[str] = ()) -> None:
        """As :class:`OpenVocabularyMixin`; with a trainable text tower the vocabulary's tokens are
        kept too, so that training recomputes the class embeddings."""
        novel_class_mask(classes, novel_classes)  # errors before any encoding
        if self.text_tower is not None:
            self.install_tokens(classes)
        super().set_vocabulary(classes, novel_classes)

    def install_tokens(self, classes: Vocabulary) -> None:
        """Keep the tokens of ``classes``' texts (what a training forward encodes); ``set_vocabulary``
        calls it, then installs the embeddings."""
        ids, mask, cls, prompt = self._tokenize(classes)
        device = self.class_embeds.device
        self.text_ids, self.text_class, self.text_prompt = ids.to(device), cls.to(device), prompt.to(device)
        self.text_mask = (torch.zeros(0, 0, dtype=torch.long) if mask is None else mask).to(device)

    def embed_classes(self, classes: Vocabulary) -> torch.Tensor:
        """(K, P, D) L2-normalised embeddings, one per class and template: by the model's text tower
        when it has one, else by :class:`TextClassifier` (cached on disk), one template at a time."""
        if self.text_tower is not None:
            with torch.no_grad():
                ids, mask, cls, prompt = (t if t is None else t.to(self.class_embeds.device)
                                          for t in self._tokenize(classes))
                return self._encode(ids, mask, cls, prompt, len(classes))
        device = self.vocabulary_device()
        return torch.stack([TextClassifier(**{"device": device, **self.text_cfg, "templates_en": [t]})(classes)
                            for t in self.templates], dim=1).to(device)

    def apply_vocabulary(self, class_embeds: torch.Tensor, novel_mask: torch.Tensor) -> None:
        """(K, P, D) or (K, D) embeddings become the class embeddings (the eval cache with a text tower)."""
        if class_embeds.dim() == 2:
            class_embeds = class_embeds[:, None]
        if class_embeds.dim() != 3 or class_embeds.shape[1:] != self.class_embeds.shape[1:]:
            p, d = self.class_embeds.shape[1:]
            raise ValueError(f"class embeddings must be (K, {p}, {d}) or (K, {d}), got {tuple(class_embeds.shape)}")
        device = self.class_embeds.device
        self.class_embeds = class_embeds.to(device=device, dtype=torch.float32)
        self.novel_mask = novel_mask.to(device)
        if len(self.text_class) and int(self.text_class.max()) + 1 != len(class_embeds):
            self.text_ids, self.text_mask = self.text_ids[:0], self.text_mask[:0]
            self.text_class, self.text_prompt = self.text_class[:0], self.text_prompt[:0]
        self._text_stale = False

    def _tokenize(self, classes: Vocabulary):
        """Token ids (N, L), attention mask (N, L) or None, class and template index (N,) of every
        (template, class, name) text, the texts :class:`TextClassifier` would embed."""
        if self._tokenizer is None:
            self._tokenizer = FGCLIP2Tokenizer.from_pretrained(self.text_cfg["checkpoint"])
        texts, cls, prompt = [], [], []
        options = {k: v for k, v in self.text_cfg.items() if k not in ("templates_en", "use_cache")}
        for p, template in enumerate(self.templates):
            per_class = TextClassifier(**options, templates_en=[template], use_cache=False).class_texts(classes)
            for c, names in enumerate(per_class):
                for name_texts in names:  # one template -> one text per name
                    texts += name_texts
                    cls += [c] * len(name_texts)
                    prompt += [p] * len(name_texts)
        with_mask = resolve_attention_mask(self.text_cfg.get("attention_mask", "auto"), self._tokenizer)
        tokens = self._tokenizer.encode(texts, kind=self.text_cfg["kind"], lowercase=False, attention_mask=with_mask)
        return tokens["input_ids"], tokens.get("attention_mask"), torch.tensor(cls), torch.tensor(prompt)

    def _encode(self, ids, mask, cls, prompt, num_classes: int) -> torch.Tensor:
        """(K, P, D): per class and template, L2(mean over the class's names of L2(text embedding))."""
        batch = int(self.text_cfg.get("batch_size", 256))
        kind = self.text_cfg["kind"]
        embeds = torch.cat([self.text_tower.encode_text(ids[i:i + batch], kind,
                                                        None if mask is None else mask[i:i + batch])
                            for i in range(0, len(ids), batch)]).float()
        p, d = len(self.templates), embeds.shape[-1]
        total = embeds.new_zeros(p * num_classes, d).index_add(0, prompt * num_classes + cls, embeds)
        return F.normalize(total, dim=-1).reshape(p, num_classes, d).transpose(0, 1)

    def class_text_embeddings(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """(K, P, D) embeddings of the vocabulary (or of the classes ``index``): recomputed with
        gradients in a training forward of a trainable text tower, else the cache."""
        if self.text_is_trainable and len(self.text_ids):
            if self.training and torch.is_grad_enabled():
                self._text_stale = True  # the step about to happen changes the weights
                ids, mask, cls, prompt, k = self.text_ids, self.text_mask, self.text_class, self.text_prompt, \
                    len(self.class_embeds)
                if index is not None:
                    remap = torch.full((k,), -1, dtype=torch.long, device=cls.device)
                    remap[index] = torch.arange(len(index), device=cls.device)
                    keep = remap[cls] >= 0
                    ids, cls, prompt, k = ids[keep], remap[cls[keep]], prompt[keep], len(index)
                    mask = mask[keep] if mask.numel() else mask
                return self._encode(ids, mask if mask.numel() else None, cls, prompt, k)
            if self._text_stale:
                with torch.no_grad():
                    self.class_embeds = self._encode(self.text_ids, self.text_mask if self.text_mask.numel() else None,
                                                     self.text_class, self.text_prompt, len(self.class_embeds))
                self._text_stale = False
        elif self.text_is_trainable and self.training and torch.is_grad_enabled():
            raise RuntimeError("the text tower is fine-tuned but the model has no vocabulary tokens: set the "
                               "vocabulary with set_vocabulary(classes) (or DatasetVocabularyHook), not "
                               "apply_vocabulary")
        return self.class_embeds if index is None else self.class_embeds[index]

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_stale = self.text_is_trainable and len(self.text_ids) > 0  # new tower weights
        super()._load_from_state_dict(*args, **kwargs)

    # ------------------------------------------------------------------------------- logits
    def _pooling(self):
        return None if self.training else self.test_cfg.get("pooling_size")

    def view_logits(self, views: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """(V, 3, h, w) views at ``clip_resolution`` -> (V, K, h / 4p, w / 4p) logits (p = patch size)."""
        text = self.class_text_embeddings() if text is None else text
        feats = self.backbone(views)
        return self.aggregator(feats.dense, text, list(feats), pooling_size=self._pooling())

    def _resize(self, x: torch.Tensor, size) -> torch.Tensor:
        size = tuple(int(s) for s in size)
        return x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def logits(self, inputs: torch.Tensor, img_shapes: Sequence[tuple[int, int]],
               text: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, H, W) logits at the batch's (padded) resolution: each image's real region resized to
        ``clip_resolution``, its logits resized back; zero outside the region."""
        shapes = [(int(s[0]), int(s[1])) for s in img_shapes]
        views = torch.cat([self._resize(inputs[b:b + 1, :, :h, :w], self.clip_resolution)
                           for b, (h, w) in enumerate(shapes)])
        out = self.view_logits(views, text)
        if all(shape == tuple(inputs.shape[-2:]) for shape in shapes):  # no padding: no zero-filled copy
            return self._resize(out, inputs.shape[-2:])
        full = out.new_zeros(len(shapes), out.shape[1], *inputs.shape[-2:])
        for b, (h, w) in enumerate(shapes):
            full[b, :, :h, :w] = self._resize(out[b:b + 1], (h, w))[0]
        return full

    def image_probs(self, image: torch.Tensor, img_shape: tuple[int, int]) -> torch.Tensor:
        """(K, h, w) class probabilities of one (3, H, W) input whose real part is ``img_shape``."""
        h, w = int(img_shape[0]), int(img_shape[1])
        if self.test_cfg.get("mode", "whole") == "whole":
            return self.logits(image[None, :, :h, :w], [(h, w)])[0].sigmoid()
        return self.slide_probs(image[:, :h, :w])

    def slide_probs(self, image: torch.Tensor) -> torch.Tensor:
        """CAT-Seg's sliding inference: the image (resized to ``resize`` if set) in ``crop_size``
        windows every ``stride`` (the last flush with the border), each window's probabilities
        averaged where windows overlap; with ``global_view`` averaged again with the whole image
        seen as one view; back to the image's size."""
        cfg = self.test_cfg
        (ch, cw), (sh, sw) = _as_pair(cfg["crop_size"]), _as_pair(cfg["stride"])
        size = tuple(image.shape[-2:])
        work = self._resize(image[None], cfg["resize"])[0] if cfg.get("resize") else image
        hh, ww = work.shape[-2:]
        boxes = [(y, x, min(ch, hh), min(cw, ww))
                 for y in _window_starts(hh, ch, sh) for x in _window_starts(ww, cw, sw)]
        views = [self._resize(work[None, :, y:y + h, x:x + w], self.clip_resolution) for y, x, h, w in boxes]
        if cfg.get("global_view", True):
            views.append(self._resize(work[None], self.clip_resolution))
        step = int(cfg.get("view_batch") or len(views))
        text = self.class_text_embeddings()
        outs = torch.cat([self.view_logits(torch.cat(views[i:i + step]), text) for i in range(0, len(views), step)])

        def probs(i, target):  # a view's sigmoid at the view's resolution, then resized to ``target``
            return self._resize(self._resize(outs[i:i + 1], self.clip_resolution).sigmoid(), target)[0]

        total = work.new_zeros(outs.shape[1], hh, ww)
        count = work.new_zeros(1, hh, ww)
        for i, (y, x, h, w) in enumerate(boxes):
            total[:, y:y + h, x:x + w] += probs(i, (h, w))
            count[:, y:y + h, x:x + w] += 1
        out = total.div_(count)
        if cfg.get("global_view", True):
            out = out.add_(probs(len(boxes), (hh, ww))).div_(2)
        return self._resize(out[None], size)[0]

    # --------------------------------------------------------------------------------- modes
    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        self.require_vocabulary()
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            shapes = [s.img_shape for s in data_samples] if data_samples else [inputs.shape[-2:]] * len(inputs)
            return self.logits(inputs, shapes)
        raise ValueError(f"invalid mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    def loss(self, inputs: torch.Tensor, data_samples) -> dict[str, torch.Tensor]:
        """Per-class BCE over the seen classes (module doc for which pixels count)."""
        shapes = [(int(s.img_shape[0]), int(s.img_shape[1])) for s in data_samples]
        k = len(self.class_embeds)
        labels = torch.stack([checked_label_map(s, inputs.shape[-2:], k, self.ignore_index)
                              for s in data_samples]).to(inputs.device)
        novel = self.novel_mask.to(inputs.device)
        seen = torch.nonzero(~novel).flatten()
        if len(seen) == 0:
            raise ValueError("every class of the vocabulary is novel: nothing to train on")
        logits = self.logits(inputs, shapes, self.class_text_embeddings(seen))
        return {"loss_seg": self.bce_loss(logits, labels, shapes, novel)}

    def bce_loss(self, logits: torch.Tensor, labels: torch.Tensor, shapes, novel: torch.Tensor) -> torch.Tensor:
        """logits (B, Ks, H, W) of the seen classes; labels (B, H, W) over the whole vocabulary."""
        inside = torch.zeros_like(labels, dtype=torch.bool)
        for b, (h, w) in enumerate(shapes):
            inside[b, :h, :w] = True
        labelled = labels != self.ignore_index
        safe = torch.where(labelled, labels, 0)
        novel_pixel = labelled & novel[safe]
        counted = inside & ~novel_pixel & (labelled | self.ignore_as_negative)
        seen_index = torch.cumsum((~novel).long(), 0) - 1                        # vocabulary -> seen index
        target = torch.where(labelled & ~novel_pixel, seen_index[safe], -1)
        onehot = (target[:, None] == torch.arange(logits.shape[1], device=logits.device)[None, :, None, None])
        if not counted.any():  # nothing counts: a zero that keeps the graph
            return logits.sum() * 0.0
        weight = counted[:, None].expand_as(onehot).float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), onehot.float(), weight=weight, reduction="sum")
        return bce / (counted.sum() * logits.shape[1])

    def predict(self, inputs: torch.Tensor, data_samples, rescale: bool = True):
        for image, sample in zip(inputs, data_samples):
            probs = self.image_probs(image, sample.img_shape).float()
            if rescale and "ori_shape" in sample.metainfo:
                probs = self._resize(probs[None], sample.ori_shape)[0]
            labels = probs.argmax(dim=0)
            sample.seg_logits = PixelData(data=torch.logit(probs.clamp(1e-6, 1 - 1e-6)))
            sample.pred_sem_seg = PixelData(sem_seg=labels[None], metainfo=dict(ignore_index=self.ignore_index))
        return data_samples


def _window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window origins along one side: every ``stride``, the last one flush with the end."""
    if crop <= 0 or stride <= 0:
        raise ValueError(f"crop_size and stride must be positive, got {crop}, {stride}")
    if size <= crop:
        return [0]
    n = math.ceil((size - crop) / stride) + 1
    return sorted({min(i * stride, size - crop) for i in range(n)})
