"""Transformer fusion: one encoder over [CLS, text tokens, image regions] with modality embeddings."""
from __future__ import annotations

import torch
from torch import nn

from .registry import FusionOutput, projection, register_fusion


@register_fusion("transformer")
class TransformerFusion(nn.Module):
    def __init__(self, cfg, text_dim: int, image_dim: int):
        super().__init__()
        h = cfg.hidden_dim
        self.text_proj = projection(text_dim, h, cfg.dropout)
        self.image_proj = projection(image_dim, h, cfg.dropout)
        self.cls = nn.Parameter(torch.zeros(1, 1, h))
        self.modality = nn.Embedding(3, h)  # 0 = CLS, 1 = text, 2 = image
        layer = nn.TransformerEncoderLayer(h, cfg.num_heads, 2 * h, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(h)
        self.out_dim = h

    def forward(self, text, image) -> FusionOutput:
        t, i = self.text_proj(text.tokens), self.image_proj(image.regions)  # (B, L, H), (B, R, H)
        b = t.shape[0]
        seq = torch.cat([self.cls.expand(b, -1, -1), t, i], 1)
        kinds = torch.cat([torch.zeros(1), torch.ones(t.shape[1]), torch.full((i.shape[1],), 2.0)]).long()
        seq = seq + self.modality(kinds.to(seq.device))
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=seq.device), text.mask,
                          torch.ones(b, i.shape[1], dtype=torch.bool, device=seq.device)], 1)
        out = self.encoder(seq, src_key_padding_mask=~keep)  # (B, 1 + L + R, H)
        return FusionOutput(self.norm(out[:, 0]))
