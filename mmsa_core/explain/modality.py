"""Modality contribution: the post seen with text only, image only and both, and who carries the decision.

The one-modality views blank the other modality exactly as the model sees a missing one
(``mmsa_core.model.blank``, what ``view="text"|"image"`` does). The share of a modality is how strongly
its view alone supports the explained class, normalised over the two views:
``share_text = p_text(c) / (p_text(c) + p_image(c))``. A post is a *conflict* when the text-only and the
image-only views point to opposite sentiments (one negative, the other positive).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..encoders import ImageFeatures, TextFeatures
from ..model import blank
from .features import cat_text

# Baselines that ignore one modality by construction: the whole decision is owed to the other one.
SINGLE_MODALITY = {"text_only": "text", "image_only": "image"}


@dataclass(frozen=True)
class ModalityViews:
    """Probabilities of the three views, each modality's share of the decision, and the conflict flag."""

    fused: dict[str, float]  # label -> probability, both modalities (the prediction)
    text: dict[str, float]  # image blanked
    image: dict[str, float]  # text blanked
    shares: dict[str, float]  # {"text": s, "image": 1 - s} for the explained class
    conflict: bool  # text-only and image-only views point to opposite sentiments

    @property
    def text_label(self) -> str:
        return max(self.text, key=self.text.get)

    @property
    def image_label(self) -> str:
        return max(self.image, key=self.image.get)

    def to_dict(self) -> dict:
        return {"fused": self.fused, "text": self.text, "image": self.image, "shares": self.shares,
                "conflict": self.conflict, "text_label": self.text_label, "image_label": self.image_label}


def _opposite(a: str, b: str) -> bool:
    return {a, b} == {"negative", "positive"}


@torch.no_grad()
def modality_views(model, text: TextFeatures, image: ImageFeatures, target: int) -> ModalityViews:
    """The three views in one batch through the fusion head (encoders already ran)."""
    device = text.tokens.device
    keep_text = torch.tensor([1.0, 1.0, 0.0], device=device)  # both, text only, image only
    keep_image = torch.tensor([1.0, 0.0, 1.0], device=device)
    texts = cat_text([text] * 3)
    images = ImageFeatures(image.regions.expand(3, -1, -1), image.pooled.expand(3, -1))
    probs = model.head(*blank(texts, images, keep_text, keep_image)).logits.softmax(-1).float().cpu()
    labels = model.labels
    fused, t, i = ({lab: float(p) for lab, p in zip(labels, row)} for row in probs.tolist())
    single = SINGLE_MODALITY.get(model.cfg.fusion)
    if single is not None:
        shares = {"text": float(single == "text"), "image": float(single == "image")}
        conflict = False  # one of the two views is not a view of this model at all
    else:
        pt, pi = float(probs[1, target]), float(probs[2, target])
        s = pt / (pt + pi) if pt + pi > 0 else 0.5
        shares = {"text": s, "image": 1.0 - s}
        conflict = _opposite(max(t, key=t.get), max(i, key=i.get))
    return ModalityViews(fused, t, i, shares, conflict)
