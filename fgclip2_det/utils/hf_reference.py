"""transformers' ``Siglip2Model`` as a reference for the parts FG-CLIP 2 shares with SigLIP 2.

Used by the parity tests and ``tools/benchmark.py``: the reference gets our weights and padded NaFlex
inputs patchified by transformers' own function, so layout mistakes on our side show up.
"""
from __future__ import annotations

import torch


def build_siglip2(model, attn_implementation: str = "eager"):
    """A ``transformers.Siglip2Model`` holding ``model``'s (an FGCLIP2) shared weights, eval mode."""
    from transformers import Siglip2Config, Siglip2Model

    cfg = model.config.to_dict()
    # SigLIP's stale CLIP bos/eos defaults lie outside small vocabularies; the model never reads them.
    text_cfg = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None, **cfg["text_config"]}
    hf_cfg = Siglip2Config(text_config=text_cfg, vision_config=cfg["vision_config"])
    for c in (hf_cfg, hf_cfg.text_config, hf_cfg.vision_config):
        c._attn_implementation = attn_implementation
    ref = Siglip2Model(hf_cfg).eval()
    ref_keys = ref.state_dict().keys()
    missing, unexpected = ref.load_state_dict(
        {k: v for k, v in model.state_dict().items() if k in ref_keys}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"Siglip2Model does not take our weights: missing {missing}, unexpected {unexpected}")
    return ref


def padded_naflex_inputs(images: list[torch.Tensor], patch_size: int = 16):
    """(pixel_values, pixel_attention_mask, spatial_shapes) as transformers' processor makes them."""
    from transformers.models.siglip2.image_processing_pil_siglip2 import convert_image_to_patches

    patches = [torch.from_numpy(convert_image_to_patches(img.float().numpy(), patch_size)) for img in images]
    n = max(len(p) for p in patches)
    pixel_values = torch.zeros(len(images), n, patches[0].shape[1])
    mask = torch.zeros(len(images), n, dtype=torch.long)
    for i, p in enumerate(patches):
        pixel_values[i, : len(p)] = p
        mask[i, : len(p)] = 1
    shapes = torch.tensor([[img.shape[1] // patch_size, img.shape[2] // patch_size] for img in images])
    return pixel_values, mask, shapes


def reference_dense_head(head, hidden: torch.Tensor, key_padding_mask: torch.Tensor | None = None):
    """The official dense head with plain torch ops: ``nn.MultiheadAttention(X, X, X)`` with padded
    keys masked, then ``H + MLP(LN(H))`` (official ``get_dense_feature``, FG2:L259-279). ``head`` is
    our ``dense_feature_head``."""
    dim = hidden.shape[-1]
    mha = torch.nn.MultiheadAttention(dim, head.attention.num_heads, batch_first=True)
    mha.load_state_dict(head.attention.state_dict())
    mha = mha.to(hidden.dtype)
    h = mha(hidden, hidden, hidden, key_padding_mask=key_padding_mask, need_weights=False)[0]
    return h + head.mlp(head.layernorm(h))
