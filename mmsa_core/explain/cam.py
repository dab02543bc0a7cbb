"""Class activation maps through the fused model, with pytorch-grad-cam.

The two-input model is wrapped as a one-input module (pixels -> logits) with the post's text features
fixed, the pattern of pytorch-grad-cam's CLIP example. Methods are picked by name from ``CAM_METHODS``.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext

import numpy as np
import torch
from pytorch_grad_cam import (EigenCAM, EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM,
                              XGradCAM)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from ..encoders import TextFeatures
from .features import repeat_text

CAM_METHODS: dict[str, type] = {
    "GradCAM": GradCAM,
    "GradCAM++": GradCAMPlusPlus,
    "HiResCAM": HiResCAM,
    "XGradCAM": XGradCAM,
    "LayerCAM": LayerCAM,
    "EigenCAM": EigenCAM,  # class-agnostic: first principal component of the activations
    "EigenGradCAM": EigenGradCAM,
    "ScoreCAM": ScoreCAM,  # gradient-free; one forward pass per channel, slow on a CPU
}
CLASS_AGNOSTIC = {"EigenCAM"}
# One model pass per activation channel (ScoreCAM; ablation-style methods such as AblationCAM likewise): tens of
# seconds on a CPU, so an app should not offer them to everyone.
SLOW_CAM_METHODS = {"ScoreCAM"}

# Gradient methods clear and fill the ``.grad`` of the model's trainable parameters (the library calls
# ``zero_grad`` and ``backward``). Two explanations doing that at once on one model crash PyTorch (a
# segfault in ``zero_grad``), so they take turns; gradient-free methods and ``predict`` never wait.
_GRADIENTS = threading.Lock()


def list_cam_methods() -> list[str]:
    return list(CAM_METHODS)


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "").replace("plusplus", "++")


def get_cam_method(name: str) -> tuple[str, type]:
    """(display name, class) for a method name in any case: "gradcam", "GradCAM++", "grad-cam", "scorecam"."""
    by_key = {_key(n): n for n in CAM_METHODS}
    key = _key(str(name))
    key = {"gradcampp": "gradcam++"}.get(key, key)
    if key not in by_key:
        raise ValueError(f"Unknown CAM method {name!r}; choose from {list_cam_methods()}")
    return by_key[key], CAM_METHODS[by_key[key]]


class _Tap(nn.Module):
    """Calls the target layer. The CAM's hooks go on this private module, never on the shared layer, so a
    ``predict`` or another explanation running at the same time on the same model neither feeds nor
    disturbs them; the tap dies with its explanation."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class ImageToLogits(nn.Module):
    """The fused model as a one-input module: (B, 3, H, W) pixels -> (B, C) logits, text held fixed.

    The stages below the target layer run without autograd and their output becomes a leaf that requires
    grad: gradients then reach the hooked layer even when every backbone parameter is frozen, and backward
    stops there instead of running through the whole CNN. ``below`` caches that output for the post's own
    pixels (the same tensor object), which the prediction already computed.
    """

    def __init__(self, model: nn.Module, text: TextFeatures,
                 below: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        enc = model.image_encoder
        if enc.target_layer is not enc.stages[-1]:
            raise ValueError("ImageToLogits expects the target layer to be the encoder's last stage")
        self.model, self.text, self.below = model, text, below
        self.tap = _Tap(enc.target_layer)

    def features_below(self, pixels: torch.Tensor) -> torch.Tensor:
        """Output of every stage under the target layer, (B, C', h', w'), computed without autograd."""
        if self.below is not None and pixels is self.below[0]:
            return self.below[1]
        with torch.no_grad():
            x = pixels
            for stage in self.model.image_encoder.stages[:-1]:
                x = stage(x)
        return x

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.features_below(pixels)
        if torch.is_grad_enabled():
            x = x.detach().requires_grad_(True)
        image = self.model.image_encoder.features(self.tap(x))  # (B, R, C) regions, (B, C) pooled
        return self.model.head(repeat_text(self.text, x.shape[0]), image).logits


def compute_cam(wrapper: ImageToLogits, pixels: torch.Tensor, target: int, method: str = "GradCAM",
                batch_size: int = 32) -> np.ndarray:
    """(H, W) float32 map in [0, 1] at the model's input resolution for class index ``target``."""
    name, cls = get_cam_method(method)
    with cls(model=wrapper, target_layers=[wrapper.tap]) as cam:
        cam.batch_size = batch_size  # ScoreCAM's masked-image batches
        with _GRADIENTS if cam.uses_gradients else nullcontext():
            try:
                heat = cam(input_tensor=pixels, targets=[ClassifierOutputTarget(target)])
            except IndexError as e:  # the library's __exit__ would swallow an IndexError and leave no result
                raise RuntimeError(f"{name} failed on this model: {e}") from e
            finally:
                if cam.uses_gradients:  # backward filled .grad of the trainable head; nothing uses it
                    wrapper.model.zero_grad(set_to_none=True)
    return np.nan_to_num(heat[0].astype(np.float32)).clip(0.0, 1.0)
