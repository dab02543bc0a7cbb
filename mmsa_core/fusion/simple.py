"""Baselines and the five pooled fusions of the lab report (concat, add, attention and its variants)."""
from __future__ import annotations

import torch
from torch import nn

from ..encoders import ImageFeatures, TextFeatures
from .registry import AttentionPool, FusionOutput, projection, register_fusion


class _Pooled(nn.Module):
    """Projects each modality to ``hidden_dim``; with ``attend`` it pools tokens/regions by attention."""

    attend = False

    def __init__(self, cfg, text_dim: int, image_dim: int):
        super().__init__()
        h = cfg.hidden_dim
        self.text_proj = projection(text_dim, h, cfg.dropout)
        self.image_proj = projection(image_dim, h, cfg.dropout)
        if self.attend:
            self.text_pool, self.image_pool = AttentionPool(h), AttentionPool(h)
        self.out_dim = h

    def both(self, text: TextFeatures, image: ImageFeatures):
        """(B, H) text and image vectors, and the attention weights when pooling by attention."""
        if not self.attend:
            return self.text_proj(text.pooled), self.image_proj(image.pooled), None, None
        t, wt = self.text_pool(self.text_proj(text.tokens), text.mask)
        i, wi = self.image_pool(self.image_proj(image.regions))
        return t, i, wt, wi


@register_fusion("text_only")
class TextOnly(_Pooled):
    """Text baseline: attention-pooled text tokens; the image is ignored."""

    attend = True

    def forward(self, text: TextFeatures, image: ImageFeatures) -> FusionOutput:
        t, wt = self.text_pool(self.text_proj(text.tokens), text.mask)
        return FusionOutput(t, text_attention=wt)


@register_fusion("image_only")
class ImageOnly(_Pooled):
    """Image baseline: attention-pooled image regions; the text is ignored."""

    attend = True

    def forward(self, text: TextFeatures, image: ImageFeatures) -> FusionOutput:
        i, wi = self.image_pool(self.image_proj(image.regions))
        return FusionOutput(i, image_attention=wi)


@register_fusion("concat")
class Concat(_Pooled):
    """[text; image] of the pooled features."""

    def __init__(self, cfg, text_dim, image_dim):
        super().__init__(cfg, text_dim, image_dim)
        self.out_dim = 2 * cfg.hidden_dim

    def forward(self, text, image) -> FusionOutput:
        t, i, _, _ = self.both(text, image)
        return FusionOutput(torch.cat([t, i], -1))


@register_fusion("add")
class Add(_Pooled):
    """text + image of the pooled features (same width after projection)."""

    def forward(self, text, image) -> FusionOutput:
        t, i, _, _ = self.both(text, image)
        return FusionOutput(t + i)


@register_fusion("attention")
class ModalityAttention(_Pooled):
    """Modality-level attention: a softmax over the two modality vectors decides how much each counts."""

    def __init__(self, cfg, text_dim, image_dim):
        super().__init__(cfg, text_dim, image_dim)
        self.gate = AttentionPool(cfg.hidden_dim)

    def forward(self, text, image) -> FusionOutput:
        t, i, _, _ = self.both(text, image)
        fused, _ = self.gate(torch.stack([t, i], 1))  # (B, 2, H) -> (B, H)
        return FusionOutput(fused)


@register_fusion("attention_concat")
class AttentionConcat(_Pooled):
    """Attention pooling inside each modality (tokens, regions), then concatenation."""

    attend = True

    def __init__(self, cfg, text_dim, image_dim):
        super().__init__(cfg, text_dim, image_dim)
        self.out_dim = 2 * cfg.hidden_dim

    def forward(self, text, image) -> FusionOutput:
        t, i, wt, wi = self.both(text, image)
        return FusionOutput(torch.cat([t, i], -1), text_attention=wt, image_attention=wi)


@register_fusion("attention_add")
class AttentionAdd(_Pooled):
    """Attention pooling inside each modality, then addition."""

    attend = True

    def forward(self, text, image) -> FusionOutput:
        t, i, wt, wi = self.both(text, image)
        return FusionOutput(t + i, text_attention=wt, image_attention=wi)
