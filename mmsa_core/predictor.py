"""The inference API the app calls: ``Predictor.from_checkpoint(path).predict(image, text)``.

Results are frozen dataclasses of plain values; no tensor or device crosses into the UI.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import load_model
from .data import check_text, load_image
from .device import resolve_device
from .model import MultimodalClassifier, merge_adapters

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]  # label -> probability, in the model's label order
    model: str  # checkpoint file name
    elapsed_ms: float = 0.0

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Predictor:
    """Loads a checkpoint once and predicts posts (image + text) one at a time or in batches."""

    def __init__(self, model: MultimodalClassifier, meta: dict | None = None, device: str = "auto"):
        self.device = resolve_device(device)
        self.model = merge_adapters(model.to(self.device).eval())  # LoRA adapters cost nothing at inference
        self.meta = meta or {}
        self.name = Path(self.meta.get("path", "model")).name
        self._explain_lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, device: str = "auto") -> "Predictor":
        """The shipped default model when ``path`` is None."""
        model, meta = load_model(path)
        return cls(model, meta, device)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    def prepare(self, images: list, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Checked inputs -> (pixels (B, 3, H, W), input_ids (B, L), mask (B, L)) on the model's device."""
        texts = [check_text(t) for t in texts]
        pixels = torch.stack([self.model.image_encoder.preprocess(load_image(im)) for im in images])
        tok = self.model.text_encoder.tokenize(texts)
        return pixels.to(self.device), tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device)

    @torch.no_grad()
    def probabilities(self, images: list, texts: list[str], view: str = "both") -> torch.Tensor:
        """(B, C) probabilities; ``view`` = text | image blanks the other modality."""
        return self.model(*self.prepare(images, texts), view=view).logits.softmax(-1).float().cpu()

    def _to_prediction(self, probs: torch.Tensor, elapsed_ms: float) -> Prediction:
        p = {lab: float(v) for lab, v in zip(self.labels, probs.tolist())}
        return Prediction(max(p, key=p.get), p, self.name, elapsed_ms)

    def predict(self, image, text: str) -> Prediction:
        """One post: an image (path, bytes or PIL) and its text."""
        t0 = time.perf_counter()
        probs = self.probabilities([image], [text])[0]
        return self._to_prediction(probs, 1000 * (time.perf_counter() - t0))

    def predict_batch(self, images: list, texts: list[str], batch_size: int = 16) -> list[Prediction]:
        """Many posts; each result equals what ``predict`` gives for that post alone (fixed-length inputs,
        eval mode, no cross-sample statistics)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        out = []
        for i in range(0, len(texts), batch_size):
            t0 = time.perf_counter()
            probs = self.probabilities(images[i:i + batch_size], texts[i:i + batch_size])
            ms = 1000 * (time.perf_counter() - t0) / len(probs)
            out += [self._to_prediction(p, ms) for p in probs]
        return out

    def explain(self, image, text: str, method: str | None = "GradCAM", target: str | int | None = None, **kw):
        """Why the model labels this post as it does: heatmap, word scores, modality views, faithfulness.

        Returns an ``mmsa_core.explain.Explanation``; ``kw`` as for ``mmsa_core.explain.explain``."""
        from .explain import explain  # imported on first use: grad-cam and captum load only when asked for

        # Grad-CAM and integrated gradients run backward passes that write the shared parameters' .grad,
        # so explanations of one model take turns (predictions, which need no gradients, still overlap).
        with self._explain_lock:
            return explain(self.model, image, text, method, target, model_name=self.name, **kw)
