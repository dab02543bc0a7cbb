"""Classification losses: cross-entropy (optionally class-weighted), focal, and adaptive class-balanced."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

LOSSES = ("ce", "weighted_ce", "focal", "adaptive")


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """sklearn's 'balanced' weights: n / (k * count_c), so rare classes (neutral) count more."""
    w = compute_class_weight("balanced", classes=np.arange(n_classes), y=np.asarray(labels))
    return torch.tensor(w, dtype=torch.float32)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): (1 - p_t)^gamma * CE, optionally class-weighted."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, -1).gather(1, target[:, None]).squeeze(1)  # (B,)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()


class AdaptiveClassBalancedLoss(nn.Module):
    """The lab report's adaptive class-balanced loss.

    For each class c a running mean of the difficulty d_c = 1 - p_t is kept (EMA over batches). Harder
    classes get a larger weight w_c = k * d_c / sum(d) and a larger focal exponent gamma_c = gamma * d_c /
    mean(d). Each sample is further scaled by the boundary term exp(-2 (p_t - p_other)), where p_other is
    the largest wrong-class probability: samples near or across the decision boundary count more.
    """

    def __init__(self, n_classes: int = 3, gamma: float = 2.0, momentum: float = 0.9):
        super().__init__()
        self.gamma, self.momentum = gamma, momentum
        self.register_buffer("difficulty", torch.full((n_classes,), 0.5))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp_all = F.log_softmax(logits, -1)
        p_all = logp_all.exp()
        logp = logp_all.gather(1, target[:, None]).squeeze(1)  # (B,)
        p_t = logp.exp()
        if self.training:
            with torch.no_grad():
                for c in target.unique():
                    d = (1 - p_t[target == c]).mean()
                    self.difficulty[c] = self.momentum * self.difficulty[c] + (1 - self.momentum) * d
        d = self.difficulty.clamp(min=1e-3)
        w = (d * len(d) / d.sum())[target]  # (B,) class weights, mean 1
        g = (self.gamma * d / d.mean())[target]  # (B,) per-class focal exponent
        p_other = p_all.masked_fill(F.one_hot(target, p_all.shape[1]).bool(), 0).max(1).values
        boundary = torch.exp(-2 * (p_t - p_other)).detach()
        return (w * boundary * (1 - p_t).detach() ** g * -logp).mean()


def create_loss(name: str, train_labels: np.ndarray, n_classes: int, label_smoothing: float = 0.0) -> nn.Module:
    """Build a loss by name; class weights come from the training labels."""
    if name == "ce":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "weighted_ce":
        return nn.CrossEntropyLoss(weight=balanced_class_weights(train_labels, n_classes),
                                   label_smoothing=label_smoothing)
    if name == "focal":
        return FocalLoss(weight=balanced_class_weights(train_labels, n_classes))
    if name == "adaptive":
        return AdaptiveClassBalancedLoss(n_classes)
    raise ValueError(f"Unknown loss {name!r}; choose from {list(LOSSES)}")
