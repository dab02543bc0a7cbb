"""Integrated gradients on the word embeddings, through the fused model with the image held fixed.

Captum's ``IntegratedGradients`` runs on the word-embedding vectors that ``TextEncoder.forward_trunk``
accepts as ``inputs_embeds``. That is the same computation as ``LayerIntegratedGradients`` on the
``word_embeddings`` layer, without a hook on a layer that a concurrent ``predict`` also runs through.
The baseline replaces every piece of the user's words ([UNK] included) with [PAD] and keeps [CLS],
[SEP] and the attention mask, so the added tokens get exactly 0 and the attributions sum to
logit(post) - logit(baseline) up to the convergence delta that is reported.
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients

from ..encoders import ImageFeatures
from .features import repeat_image
from .words import EncodedText


def _logits_fn(model, mask: torch.Tensor, image: ImageFeatures):
    """word embeddings (B, L, D) -> (B, C) logits, the mask and the image fixed."""
    enc = model.text_encoder

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        b = embeds.shape[0]
        m = mask.expand(b, -1)
        hidden = enc.forward_top(enc.forward_trunk(None, m, inputs_embeds=embeds), m)
        return model.head(enc.features(hidden, m), repeat_image(image, b)).logits

    return forward


def integrated_gradients(model, encoded: EncodedText, image: ImageFeatures, target: int,
                         steps: int = 32, batch_size: int = 64) -> tuple[np.ndarray, float]:
    """Signed (L,) attribution per word piece for the ``target`` logit, and Captum's convergence delta.

    Padding is cut off before integrating (every fusion masks it, so the logits do not change) and the
    ``steps`` interpolation points run in batches of ``batch_size``.
    """
    device = next(model.parameters()).device
    n = int(encoded.mask.sum())  # real tokens come first
    ids, mask = encoded.input_ids[:, :n].to(device), encoded.mask[:, :n].to(device)
    added = torch.tensor([w < 0 for w in encoded.token_word[:n]], device=device)  # [CLS], [SEP]
    baseline_ids = torch.where(added[None], ids, torch.full_like(ids, model.text_encoder.tokenizer.pad_token_id))
    table = model.text_encoder.model.embeddings.word_embeddings
    with torch.no_grad():
        x, x0 = table(ids), table(baseline_ids)  # (1, n, D)
    ig = IntegratedGradients(_logits_fn(model, mask, image))
    attr, delta = ig.attribute(x, baselines=x0, target=target, n_steps=steps,
                               internal_batch_size=batch_size, return_convergence_delta=True)
    out = np.zeros(encoded.input_ids.shape[1], dtype=np.float32)
    out[:n] = attr.sum(-1)[0].detach().float().cpu().numpy()
    return out, float(delta.abs().max())
