"""Multi-scale cross-modal fusion (seed "基于多尺度跨模态特征融合的图文情感分类模型").

Image features at two scales, the local 7x7 grid and the global vector, and the text tokens meet in
cross-modal attention both ways. The local and global branches share their parameters (one projection,
one attention block per direction). A transformer encoder reads [T, T', I', I], max-pooling gives the
fused vector. During training an auxiliary masked-token loss asks the fused text states to recover the
tokens most similar to the global image feature (``mlm_mask_rate`` of the real tokens), which ties
words to what the image shows. Masking acts on the token features (a learned mask vector), so it also
works on cached encoder outputs.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import FusionOutput, projection, register_fusion


class CrossBlock(nn.Module):
    """query attends to context: residual + LayerNorm + feed-forward."""

    def __init__(self, h: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(h, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(h), nn.LayerNorm(h)
        self.ffn = nn.Sequential(nn.Linear(h, 2 * h), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * h, h))

    def forward(self, q, ctx, ctx_pad=None):
        a, w = self.attn(q, ctx, ctx, key_padding_mask=ctx_pad, need_weights=True)
        x = self.norm1(q + a)
        return self.norm2(x + self.ffn(x)), w


@register_fusion("mscmf")
class MultiScaleCrossModal(nn.Module):
    def __init__(self, cfg, text_dim: int, image_dim: int):
        super().__init__()
        h = cfg.hidden_dim
        self.mask_rate, self.use_mlm = cfg.mlm_mask_rate, cfg.mlm_weight > 0
        self.text_proj = projection(text_dim, h, cfg.dropout)
        self.image_proj = projection(image_dim, h, cfg.dropout)  # shared by the local and global scales
        self.text_to_image = CrossBlock(h, cfg.num_heads, cfg.dropout)  # T' : text asks the image
        self.image_to_text = CrossBlock(h, cfg.num_heads, cfg.dropout)  # I' : image (both scales) asks the text
        self.segment = nn.Embedding(4, h)  # T, T', I', I
        layer = nn.TransformerEncoderLayer(h, cfg.num_heads, 2 * h, cfg.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.mask_vector = nn.Parameter(torch.zeros(text_dim))
        self.mlm_head = nn.Sequential(nn.Linear(h, text_dim), nn.GELU(), nn.LayerNorm(text_dim))
        self.out_dim = h

    def _mlm_mask(self, t_proj: torch.Tensor, g: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: the real tokens (not the first/last special tokens) most similar to the global image."""
        inner = mask.clone()
        inner[:, 0] = False
        last = mask.sum(1) - 1
        inner[torch.arange(mask.shape[0]), last.clamp(min=0)] = False
        sim = torch.cosine_similarity(t_proj, g.unsqueeze(1), dim=-1).masked_fill(~inner, float("-inf"))
        k = (inner.sum(1).float() * self.mask_rate).ceil().long()  # (B,)
        order = sim.argsort(1, descending=True).argsort(1)  # rank of each token
        return (order < k.unsqueeze(1)) & inner

    def forward(self, text, image) -> FusionOutput:
        tokens, mask = text.tokens, text.mask
        local = self.image_proj(image.regions)  # (B, R, H)
        glob = self.image_proj(image.pooled.unsqueeze(1))  # (B, 1, H), same weights: shared scales
        masked = None
        if self.training and self.use_mlm and text.input_ids is not None:
            with torch.no_grad():
                masked = self._mlm_mask(self.text_proj(tokens), glob[:, 0], mask)
            tokens = torch.where(masked.unsqueeze(-1), self.mask_vector.to(tokens.dtype), tokens)
        t = self.text_proj(tokens)  # (B, L, H)
        image_seq = torch.cat([glob, local], 1)  # (B, 1 + R, H)
        t2, w_ti = self.text_to_image(t, image_seq)  # (B, L, H)
        i2_local, _ = self.image_to_text(local, t, ~mask)
        i2_glob, w_it = self.image_to_text(glob, t, ~mask)  # same block: shared parameters across scales
        i2 = torch.cat([i2_glob, i2_local], 1)
        seq = torch.cat([t + self.segment.weight[0], t2 + self.segment.weight[1],
                         i2 + self.segment.weight[2], image_seq + self.segment.weight[3]], 1)
        n_img = image_seq.shape[1]
        ones = torch.ones(mask.shape[0], n_img, dtype=torch.bool, device=mask.device)
        keep = torch.cat([mask, mask, ones, ones], 1)
        out = self.encoder(seq, src_key_padding_mask=~keep)  # (B, 2L + 2(1+R), H)
        pooled = out.masked_fill(~keep.unsqueeze(-1), -math.inf).max(1).values  # max-pool over real positions
        result = FusionOutput(pooled, text_attention=w_it[:, 0], image_attention=w_ti.mean(1)[:, 1:])
        if masked is not None and masked.any():
            result.mlm_states = self.mlm_head(out[:, : mask.shape[1]][masked])  # (N, Dt)
            result.mlm_targets = text.input_ids[masked]
        return result
