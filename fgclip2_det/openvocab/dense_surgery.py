"""Training-free "last-block surgery" for FG-CLIP 2's dense features, in plain PyTorch.

ClearCLIP, SCLIP and NACLIP make CLIP ViT patch tokens better at zero-shot segmentation by changing
the *last* transformer block at inference time, without training:

* **ClearCLIP** (Lan et al., ECCV 2024, arXiv 2407.12442; code mc-lan/ClearCLIP,
  ``open_clip/transformer.py``, ``VisionTransformer.forward`` / ``custom_attn``): the last block's
  output is its attention branch alone, ``out_proj(softmax(s * Q Q^T) V)`` of ``ln_1(x)``: self-self
  (q-q) attention, no residual, no feed-forward network;
* **SCLIP** (Wang et al., ECCV 2024, arXiv 2312.01597; code wangf3014/SCLIP, ``clip/model.py``,
  ``VisionTransformer.forward`` / ``custom_attn``): "correlative self-attention",
  ``(softmax(s * Q Q^T) + softmax(s * K K^T)) V`` (the two row-stochastic maps are summed, not
  averaged); the released code keeps the block's residual and feed-forward network;
* **NACLIP** (Hajimiri et al., WACV 2025, arXiv 2404.08181; code sinahmr/NACLIP, ``clip/model.py``
  ``custom_attn`` / ``gaussian_window``, defaults in ``naclip.py``: ``arch='reduced'``,
  ``gaussian_std=5``): k-k attention plus a Gaussian neighbourhood prior added to the attention
  logits, ``softmax(s * K K^T + G)``, ``G[i, j] = exp(-|p_i - p_j|^2 / (2 sigma^2))`` over patch-grid
  positions ``p`` (sigma in patches, unscaled by ``s``), and the "reduced" block: no residual, no
  feed-forward network.

Everywhere ``s = head_dim ** -0.5`` and attention is per head, as in the three repositories.

FG-CLIP 2 is different: its dense map does not come from the last encoder block but from the
**dense head** (``dense_feature_head``, a SigLIP MAP head, FG2:L259-279): with ``X`` the encoder
output after ``post_layernorm``, ``H = out_proj(softmax(s * Q K^T) V)`` with every patch as its own
query (``Q, K, V`` from the head's packed ``in_proj``), then ``F = H + MLP(LN(H))``. That head is
already a block *without* the attention residual, and it is the last place tokens mix, so the
surgery has two natural targets, both offered here:

* the **dense head** (variants without ``_block``): its attention map is replaced as the method
  replaces the last block's, and its ``H + MLP(LN(H))`` tail -- the analogue of the block's
  feed-forward network -- is kept or dropped;
* the **last encoder block** (``*_block`` variants), literally as on CLIP: the block's attention
  (on ``layer_norm1(x)``, with its own q/k/v/out projections) replaced, residual and MLP dropped or
  kept as the method does; then ``post_layernorm`` and the official dense head.

Named variants (:data:`DENSE_MODES`), ``A`` the attention map, ``F`` the dense feature:

==========================  ==========================================================================
``head``                    official: ``A = softmax(sQK^T)``, ``F = H + MLP(LN(H))`` (no surgery)
``head_drop_mlp``           official attention, ``F = H`` (isolates the MLP tail)
``clearclip``               ``A = softmax(sQQ^T)``, ``F = H`` (no MLP; the head has no residual)
``clearclip_keep_mlp``      ``A = softmax(sQQ^T)``, ``F = H + MLP(LN(H))``
``sclip``                   ``A = softmax(sQQ^T) + softmax(sKK^T)``, ``F = H + MLP(LN(H))``
``sclip_drop_mlp``          SCLIP's ``A``, ``F = H``
``naclip``                  ``A = softmax(sKK^T + G)``, ``F = H``
``naclip_keep_mlp``         NACLIP's ``A``, ``F = H + MLP(LN(H))``
``clearclip_block``         last encoder block ``x_L = out_proj(softmax(sQQ^T) V)`` of ``LN1(x_{L-1})``
                            (no residual, no MLP), then post-LN and the official dense head
``sclip_block``             last block with SCLIP's ``A``, residual and MLP kept, then the official head
``naclip_block``            last block ``x_L = out_proj(softmax(sKK^T + G) V)`` (no residual, no MLP),
                            then post-LN and the official dense head
==========================  ==========================================================================

Nothing here changes weights; every variant reads the checkpoint's parameters. Each image is
computed on its own grid (packed sequences, as the encoder), so a batch-mate never changes a result.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..model.layers import AttentionPoolingHead, EncoderLayer
from ..model.vision import unpack_maps

#: Attention maps: ``qk`` (standard), ``qq`` (ClearCLIP), ``kk``, ``qq+kk`` (SCLIP's sum of two
#: softmaxes), ``kk+gauss`` (NACLIP's k-k logits plus the Gaussian neighbourhood prior).
ATTENTIONS = ("qk", "qq", "kk", "qq+kk", "kk+gauss")

#: NACLIP's Gaussian standard deviation, in patches (``naclip.py``: ``gaussian_std=5.``).
NACLIP_GAUSSIAN_STD = 5.0


@dataclass(frozen=True)
class DenseSurgery:
    """Where and how the dense path is changed (module doc).

    Args:
        head_attention: attention map of the dense head (:data:`ATTENTIONS`).
        head_mlp: keep the head's ``H + MLP(LN(H))`` tail (False: ``F = H``).
        block_attention: None = last encoder block untouched; else its attention map.
        block_reduced: with ``block_attention``: drop the block's residual and MLP (ClearCLIP,
            NACLIP) instead of keeping them (SCLIP).
        gaussian_std: sigma, in patches, of the ``kk+gauss`` prior.
    """
    head_attention: str = "qk"
    head_mlp: bool = True
    block_attention: str | None = None
    block_reduced: bool = True
    gaussian_std: float = NACLIP_GAUSSIAN_STD

    def __post_init__(self):
        for name, value in (("head_attention", self.head_attention), ("block_attention", self.block_attention)):
            if value is not None and value not in ATTENTIONS:
                raise ValueError(f"{name} must be one of {ATTENTIONS}, got {value!r}")
        if not self.gaussian_std > 0:
            raise ValueError(f"gaussian_std must be positive, got {self.gaussian_std!r}")

    @property
    def is_official(self) -> bool:
        return self.head_attention == "qk" and self.head_mlp and self.block_attention is None


#: The named variants of ``dense_mode`` (module doc for their definitions).
DENSE_MODES: dict[str, DenseSurgery] = {
    "head": DenseSurgery(),
    "head_drop_mlp": DenseSurgery(head_mlp=False),
    "clearclip": DenseSurgery(head_attention="qq", head_mlp=False),
    "clearclip_keep_mlp": DenseSurgery(head_attention="qq"),
    "sclip": DenseSurgery(head_attention="qq+kk"),
    "sclip_drop_mlp": DenseSurgery(head_attention="qq+kk", head_mlp=False),
    "naclip": DenseSurgery(head_attention="kk+gauss", head_mlp=False),
    "naclip_keep_mlp": DenseSurgery(head_attention="kk+gauss"),
    "clearclip_block": DenseSurgery(block_attention="qq", block_reduced=True),
    "sclip_block": DenseSurgery(block_attention="qq+kk", block_reduced=False),
    "naclip_block": DenseSurgery(block_attention="kk+gauss", block_reduced=True),
}


def resolve_dense_mode(mode: str | DenseSurgery) -> DenseSurgery:
    """A :data:`DENSE_MODES` name (or a :class:`DenseSurgery`) -> the :class:`DenseSurgery`."""
    if isinstance(mode, DenseSurgery):
        return mode
    if not isinstance(mode, str) or mode not in DENSE_MODES:
        raise ValueError(f"unknown dense_mode {mode!r}; choose one of {sorted(DENSE_MODES)} "
                         "(fgclip2_det/openvocab/dense_surgery.py defines each)")
    return DENSE_MODES[mode]


# --------------------------------------------------------------------------------------- attention
def gaussian_prior(h: int, w: int, std: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h*w, h*w) ``exp(-|p_i - p_j|^2 / (2 std^2))`` between the cells of an (h, w) grid, row-major
    (NACLIP's neighbourhood term; its window spans every offset, so nothing is truncated)."""
    rows = torch.arange(h, device=device, dtype=torch.float32).repeat_interleave(w)
    cols = torch.arange(w, device=device, dtype=torch.float32).repeat(h)
    dist2 = (rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2
    return torch.exp(-dist2 / (2.0 * std ** 2)).to(dtype)


def surgery_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, kind: str,
                      grid: tuple[int, int] | None = None, gaussian_std: float = NACLIP_GAUSSIAN_STD
                      ) -> torch.Tensor:
    """One sequence: (N, D) q, k, v -> (N, D) ``A V`` per head, heads concatenated (before the output
    projection); ``A`` by ``kind`` (:data:`ATTENTIONS`), scale ``head_dim ** -0.5``. ``grid`` (h, w)
    with h*w = N is needed by ``kk+gauss``."""
    n, dim = q.shape
    hd = dim // num_heads
    qh, kh, vh = (t.reshape(n, num_heads, hd).transpose(0, 1)[None] for t in (q, k, v))
    if kind == "qk":
        out = F.scaled_dot_product_attention(qh, kh, vh)
    elif kind == "qq":
        out = F.scaled_dot_product_attention(qh, qh, vh)
    elif kind == "kk":
        out = F.scaled_dot_product_attention(kh, kh, vh)
    elif kind == "qq+kk":
        out = F.scaled_dot_product_attention(qh, qh, vh) + F.scaled_dot_product_attention(kh, kh, vh)
    elif kind == "kk+gauss":
        if grid is None or grid[0] * grid[1] != n:
            raise ValueError(f"kk+gauss needs the (h, w) grid of the {n} tokens, got {grid}")
        prior = gaussian_prior(*grid, gaussian_std, device=q.device, dtype=q.dtype)
        out = F.scaled_dot_product_attention(kh, kh, vh, attn_mask=prior)
    else:
        raise ValueError(f"attention kind must be one of {ATTENTIONS}, got {kind!r}")
    return out[0].transpose(0, 1).reshape(n, dim)


def _per_image(q, k, v, num_heads, kind, grids, std) -> torch.Tensor:
    lengths = [h * w for h, w in grids]
    return torch.cat([surgery_attention(qi, ki, vi, num_heads, kind, g, std)
                      for qi, ki, vi, g in zip(q.split(lengths), k.split(lengths), v.split(lengths), grids)])


# ------------------------------------------------------------------------------------ the two sites
def head_surgery(head: AttentionPoolingHead, tokens: torch.Tensor, grids: Sequence[tuple[int, int]],
                 spec: DenseSurgery) -> torch.Tensor:
    """The dense head with ``spec``'s attention and tail: packed (T, D) post-LN tokens -> (T, D)."""
    att = head.attention
    q, k, v = F.linear(tokens, att.in_proj_weight, att.in_proj_bias).chunk(3, dim=-1)
    hidden = att.out_proj(_per_image(q, k, v, att.num_heads, spec.head_attention, grids, spec.gaussian_std))
    return head._finish(hidden) if spec.head_mlp else hidden


def block_surgery(layer: EncoderLayer, x: torch.Tensor, grids: Sequence[tuple[int, int]],
                  spec: DenseSurgery) -> torch.Tensor:
    """The last encoder block with ``spec.block_attention``: packed (T, D) input of the block -> its
    (T, D) output (pre post-LN); residual and MLP dropped when ``spec.block_reduced``."""
    attn = layer.self_attn
    h = layer.layer_norm1(x)
    out = attn.out_proj(_per_image(attn.q_proj(h), attn.k_proj(h), attn.v_proj(h), attn.num_heads,
                                   spec.block_attention, grids, spec.gaussian_std))
    if spec.block_reduced:
        return out
    x = x + out
    return x + layer.mlp(layer.layer_norm2(x))


def surgery_dense_maps(model, images: list[torch.Tensor], spec: DenseSurgery | str) -> list[torch.Tensor]:
    """Per image the (D, h, w) dense map (unnormalised, as ``FGCLIP2.vision_features``) of an
    :class:`~fgclip2_det.model.FGCLIP2` under ``spec``. The encoder runs as usual up to the last
    block; with ``spec.block_attention`` that block is replaced (the input it would have had is
    taken from the encoder, the block itself re-run with the surgery)."""
    spec = resolve_dense_mode(spec)
    images = model._check_images(images)
    vision = model.vision_model
    depth = len(vision.encoder.layers)
    if spec.block_attention is None:
        out = vision(images)
        tokens = out.tokens
    else:
        if depth < 2:
            raise ValueError("last-block surgery needs an encoder of at least 2 blocks")
        out = vision(images, out_indices=(depth - 2,))
        x = block_surgery(vision.encoder.layers[-1], out.intermediates[0], out.grids, spec)
        tokens = vision.post_layernorm(x)
    return unpack_maps(head_surgery(model.dense_feature_head, tokens, out.grids, spec), out.grids)


def backbone_dense(backbone, x: torch.Tensor, img_shapes: Sequence[tuple[int, int]] | None,
                   spec: DenseSurgery | str) -> torch.Tensor:
    """What :class:`~fgclip2_det.openvocab.FGCLIP2ViT` returns as ``.dense`` for the batch ``x``
    (same cropping to each image's real region and zero padding to the batch's grid), under ``spec``:
    (B, D, grid_h, grid_w)."""
    crops = backbone.crop_images(x, img_shapes)
    needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in backbone.parameters())
    with torch.set_grad_enabled(needs_grad):
        maps = surgery_dense_maps(backbone.fgclip2, crops, spec)
    p = backbone.patch_size
    gh, gw = -(-x.shape[-2] // p), -(-x.shape[-1] // p)
    return torch.stack([F.pad(m, (0, gw - m.shape[-1], 0, gh - m.shape[-2])) for m in maps])
