"""BiGRU-ResNet with tensor fusion (seed "基于多模态的图文情感分析").

Text tokens -> BiGRU -> self-attention pooling; pooled image features; each modality weighted by a
learned attention score; then a tensor (outer) product of [t; 1] and [i; 1], which keeps the unimodal
terms and adds every pairwise interaction, flattened into an MLP.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import AttentionPool, FusionOutput, projection, register_fusion


@register_fusion("bigru_tensor")
class BiGRUTensor(nn.Module):
    def __init__(self, cfg, text_dim: int, image_dim: int, tensor_dim: int = 32):
        super().__init__()
        h = cfg.hidden_dim
        self.gru = nn.GRU(text_dim, h // 2, batch_first=True, bidirectional=True)
        self.text_pool = AttentionPool(h)
        self.image_proj = projection(image_dim, h, cfg.dropout)
        self.modality_gate = nn.Linear(2 * h, 2)  # attention weighting of the two modalities
        self.t_small, self.i_small = nn.Linear(h, tensor_dim), nn.Linear(h, tensor_dim)
        self.mlp = nn.Sequential(nn.Linear((tensor_dim + 1) ** 2, h), nn.GELU(), nn.Dropout(cfg.dropout))
        self.out_dim = h

    def forward(self, text, image) -> FusionOutput:
        lengths = text.mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(text.tokens, lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=text.tokens.shape[1])
        t, wt = self.text_pool(states, text.mask)  # (B, H)
        i = self.image_proj(image.pooled)  # (B, H)
        a = self.modality_gate(torch.cat([t, i], -1)).softmax(-1)  # (B, 2)
        t, i = self.t_small(t * a[:, :1]), self.i_small(i * a[:, 1:])  # (B, d)
        one = torch.ones_like(t[:, :1])
        outer = torch.einsum("bi,bj->bij", torch.cat([t, one], -1), torch.cat([i, one], -1))  # (B, d+1, d+1)
        return FusionOutput(self.mlp(outer.flatten(1)), text_attention=wt)
