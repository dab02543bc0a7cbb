"""What an explanation returns: a frozen record of plain values (arrays, PIL images, floats, strings)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .geometry import Box
from .modality import ModalityViews
from .overlay import overlay


@dataclass(frozen=True, eq=False)
class Explanation:
    """Why the model labelled one post as it did. ``None`` fields do not apply; ``notes`` say why."""

    label: str  # the predicted label
    probabilities: dict[str, float]  # label -> probability (fused model), in the model's label order
    target: str  # the label explained (the predicted one unless asked otherwise)
    method: str | None  # CAM method used for the heatmap
    heatmap: np.ndarray | None  # (H, W) float32 in [0, 1] at the original image size; 0 outside crop_box
    overlay: Image.Image | None  # heatmap blended onto the image at ``alpha``
    crop_box: Box | None  # (left, top, right, bottom): the part of the image the model saw
    word_scores: list[tuple[str, float]] | None  # integrated gradients per word, signed: + pushes to target
    word_attention: list[tuple[str, float]] | None  # the fusion head's own attention per word (not signed)
    truncated_words: int  # trailing words beyond max_text_len: the model never read them (score 0)
    modality: ModalityViews  # text-only / image-only / fused views, shares, conflict flag
    faithfulness: dict[str, float]  # image_road*, image_confidence_change, words_comprehensiveness, ...
    ig_delta: float | None  # |sum of attributions - (logit(post) - logit(baseline))|, small = converged
    elapsed_ms: float
    notes: tuple[str, ...] = ()  # what does not apply to this model, and why
    model: str = "model"  # checkpoint file name

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def reblend(self, image, alpha: float) -> Image.Image | None:
        """The overlay at another opacity, without recomputing (``image`` = the same original image)."""
        if self.heatmap is None:
            return None
        return overlay(image, self.heatmap, alpha, box=self.crop_box)

    def to_dict(self) -> dict:
        """JSON-ready summary: everything but the heatmap array and the overlay image."""
        return {
            "model": self.model, "label": self.label, "probabilities": self.probabilities, "target": self.target,
            "method": self.method, "crop_box": list(self.crop_box) if self.crop_box else None,
            "heatmap_shape": list(self.heatmap.shape) if self.heatmap is not None else None,
            "word_scores": [list(p) for p in self.word_scores] if self.word_scores is not None else None,
            "word_attention": [list(p) for p in self.word_attention] if self.word_attention is not None else None,
            "truncated_words": self.truncated_words, "modality": self.modality.to_dict(),
            "faithfulness": self.faithfulness, "ig_delta": self.ig_delta, "elapsed_ms": self.elapsed_ms,
            "notes": list(self.notes),
        }
