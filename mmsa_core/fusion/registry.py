"""The fusion registry: every model family is built by name, and a wrong name gets the menu."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FUSIONS: dict[str, type[nn.Module]] = {}


def register_fusion(name: str):
    """Class decorator: ``@register_fusion("concat")`` makes the head buildable by name."""

    def wrap(cls):
        if name in FUSIONS:
            raise ValueError(f"Fusion {name!r} is registered twice")
        cls.registry_name = name
        FUSIONS[name] = cls
        return cls

    return wrap


def list_fusions() -> list[str]:
    return sorted(FUSIONS)


def create_fusion(name: str, cfg, text_dim: int, image_dim: int) -> nn.Module:
    """Build a fusion head by registry name."""
    if name not in FUSIONS:
        raise ValueError(f"Unknown fusion {name!r}; choose from {list_fusions()}")
    return FUSIONS[name](cfg, text_dim, image_dim)


@dataclass
class FusionOutput:
    """What a fusion head returns: a fused vector plus what explanations and auxiliary losses need."""

    features: torch.Tensor  # (B, out_dim)
    text_attention: torch.Tensor | None = None  # (B, L) the head's own weights over tokens, rows sum to 1
    image_attention: torch.Tensor | None = None  # (B, R) weights over image regions
    mlm_states: torch.Tensor | None = None  # (N, Dt) predictions at masked token positions
    mlm_targets: torch.Tensor | None = None  # (N,) token ids to recover


class AttentionPool(nn.Module):
    """Additive attention pooling over a sequence: score = w · tanh(W x), softmax over real positions."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        s = self.score(x).squeeze(-1)  # (B, L)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        w = s.softmax(-1)  # (B, L)
        return (w.unsqueeze(-1) * x).sum(1), w  # (B, D), (B, L)


def projection(din: int, dout: int, dropout: float) -> nn.Module:
    """The shared per-modality projection: Linear -> GELU -> Dropout, with LayerNorm on the input."""
    return nn.Sequential(nn.LayerNorm(din), nn.Linear(din, dout), nn.GELU(), nn.Dropout(dropout))
