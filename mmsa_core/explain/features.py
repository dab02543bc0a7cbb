"""Encoded features of one post, repeated to a batch: how one modality is held fixed while the other varies."""
from __future__ import annotations

import torch

from ..encoders import ImageFeatures, TextFeatures


def repeat_text(text: TextFeatures, b: int) -> TextFeatures:
    """A (1, ...) post's text features as a batch of ``b`` identical rows (views, no copy)."""
    ids = text.input_ids.expand(b, -1) if text.input_ids is not None else None
    return TextFeatures(text.tokens.expand(b, -1, -1), text.mask.expand(b, -1), text.pooled.expand(b, -1), ids)


def repeat_image(image: ImageFeatures, b: int) -> ImageFeatures:
    return ImageFeatures(image.regions.expand(b, -1, -1), image.pooled.expand(b, -1))


def cat_text(parts: list[TextFeatures]) -> TextFeatures:
    ids = None if any(p.input_ids is None for p in parts) else torch.cat([p.input_ids for p in parts])
    return TextFeatures(torch.cat([p.tokens for p in parts]), torch.cat([p.mask for p in parts]),
                        torch.cat([p.pooled for p in parts]), ids)
