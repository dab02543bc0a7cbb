"""VG-MHCA: image-as-query multi-head cross-attention over the text tokens."""
from __future__ import annotations

import torch
from torch import nn

from .registry import FusionOutput, projection, register_fusion


@register_fusion("cross_attention")
class ImageQueryCrossAttention(nn.Module):
    """Each image region (and the global image vector) asks the text which words matter to it."""

    def __init__(self, cfg, text_dim: int, image_dim: int):
        super().__init__()
        h = cfg.hidden_dim
        self.text_proj = projection(text_dim, h, cfg.dropout)
        self.image_proj = projection(image_dim, h, cfg.dropout)
        self.attn = nn.MultiheadAttention(h, cfg.num_heads, dropout=cfg.dropout, batch_first=True)
        self.norm = nn.LayerNorm(h)
        self.ffn = nn.Sequential(nn.Linear(h, 2 * h), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * h, h))
        self.out_dim = 2 * h

    def forward(self, text, image) -> FusionOutput:
        t = self.text_proj(text.tokens)  # (B, L, H)
        q = self.image_proj(torch.cat([image.pooled.unsqueeze(1), image.regions], 1))  # (B, 1 + R, H)
        att, w = self.attn(q, t, t, key_padding_mask=~text.mask, need_weights=True)  # w: (B, 1 + R, L)
        x = self.norm(q + att)
        x = x + self.ffn(x)
        m = text.mask.unsqueeze(-1).to(t.dtype)
        t_pool = (t * m).sum(1) / m.sum(1).clamp(min=1.0)
        word_w = w.mean(1)  # (B, L) attention each word received, averaged over the image queries
        return FusionOutput(torch.cat([x.mean(1), t_pool], -1), text_attention=word_w)
