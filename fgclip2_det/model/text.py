"""FG-CLIP 2 text tower (official MOD:L605-764): SigLIP 2 text transformer plus the long-caption
positions."""
from __future__ import annotations

import torch
from torch import nn

from .config import TextConfig
from .layers import Encoder

TEXT_KINDS = ("short", "box", "long")


class TextEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.keep_len = cfg.keep_len
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        # Long captions: positions < keep_len read position_embedding_ori, the rest _res (MOD:L658-669).
        self.position_embedding_res = nn.Embedding(cfg.longtext_len, cfg.hidden_size)
        self.position_embedding_ori = nn.Embedding(cfg.longtext_len, cfg.hidden_size)

    def forward(self, input_ids: torch.Tensor, kind: str) -> torch.Tensor:
        length = input_ids.shape[1]
        if kind == "long":
            k = min(self.keep_len, length)
            positions = torch.cat([self.position_embedding_ori.weight[:k],
                                   self.position_embedding_res.weight[k:length]])
        else:
            positions = self.position_embedding.weight[:length]
        return self.token_embedding(input_ids) + positions


class TextTransformer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = TextEmbeddings(cfg)
        self.encoder = Encoder(cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads,
                               cfg.intermediate_size, cfg.hidden_act, cfg.layer_norm_eps)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.head = nn.Linear(cfg.hidden_size, cfg.projection_size)

    def expected_length(self, kind: str) -> int:
        if kind not in TEXT_KINDS:
            raise ValueError(f"unknown text kind {kind!r}; expected one of {TEXT_KINDS}")
        return self.config.longtext_len if kind == "long" else self.config.max_position_embeddings

    def forward(self, input_ids: torch.Tensor, kind: str,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled text features (B, D): final-LN state at the last position; ``head`` applied only
        for ``kind='short'`` (box/long get their heads in the outer model). No causal mask.

        ``attention_mask`` (B, L), 1 = real token: the official training passes none (pad tokens
        are attended), so the default None is the faithful choice."""
        b, length = input_ids.shape
        x = self.embeddings(input_ids, kind).reshape(b * length, -1)
        mask = None if attention_mask is None else attention_mask.to(torch.bool)
        x, _ = self.encoder(x, [length] * b, key_padding_mask=mask)
        pooled = self.final_layer_norm(x.reshape(b, length, -1)[:, -1])
        return self.head(pooled) if kind == "short" else pooled
