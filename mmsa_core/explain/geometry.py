"""Where the model's input lies in the original image, and heatmaps mapped back onto the original.

Image encoders preprocess like timm and torchvision do: resize the shorter side, then center-crop. The
model never sees the margins of a non-square image, so a heatmap at input resolution covers the central
crop only. We paste it back where that crop lies in the original image and leave the margins at 0
(``crop_box`` tells the UI which part was seen). Explaining an uncropped resize instead would explain
another input than the one the prediction was made on.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from torchvision import transforms as T

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in original pixels
_NON_GEOMETRIC = (T.ToTensor, T.PILToTensor, T.Normalize, T.ConvertImageDtype)


def _size_pair(size) -> tuple[int, int] | int:
    """torchvision sizes: int or [int] = shorter side; (h, w) = exact."""
    if isinstance(size, int):
        return size
    size = list(size)
    return size[0] if len(size) == 1 else (int(size[0]), int(size[1]))


def _geometry(preprocess) -> tuple[object | None, object | None]:
    """(resize size, crop size) of a preprocessing pipeline, None where a step is absent."""
    if hasattr(preprocess, "resize_size") and hasattr(preprocess, "crop_size"):  # torchvision weights.transforms()
        return _size_pair(preprocess.resize_size), _size_pair(preprocess.crop_size)
    steps = preprocess.transforms if isinstance(preprocess, T.Compose) else [preprocess]
    resize = crop = None
    for step in steps:
        if isinstance(step, T.Resize):
            if crop is not None:
                raise ValueError("Cannot map heatmaps back: the preprocessing resizes after cropping")
            resize = _size_pair(step.size)
        elif isinstance(step, T.CenterCrop):
            crop = _size_pair(step.size)
        elif not isinstance(step, _NON_GEOMETRIC):
            raise ValueError(f"Cannot map heatmaps back through {type(step).__name__}; supported: Resize, "
                             "CenterCrop and non-geometric steps (ToTensor, Normalize)")
    return resize, crop


def _resized(size, w: int, h: int) -> tuple[int, int]:
    """(w, h) after torchvision's Resize(size), same rounding as torchvision."""
    if size is None:
        return w, h
    if isinstance(size, tuple):
        return size[1], size[0]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def crop_box(preprocess, image_size: tuple[int, int]) -> Box:
    """The region of the original image (``image_size`` = (w, h)) that the model's input shows."""
    w, h = image_size
    resize, crop = _geometry(preprocess)
    rw, rh = _resized(resize, w, h)
    if crop is None:
        cw, ch = rw, rh
    else:
        cw, ch = (crop, crop) if isinstance(crop, int) else (crop[1], crop[0])
    # torchvision's center_crop: offset round((size - crop) / 2), or -(pad // 2) where it pads
    left = int(round((rw - cw) / 2.0)) if cw <= rw else -((cw - rw) // 2)
    top = int(round((rh - ch) / 2.0)) if ch <= rh else -((ch - rh) // 2)
    sx, sy = w / rw, h / rh
    return (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)


def to_original(heatmap: np.ndarray, box: Box, image_size: tuple[int, int]) -> np.ndarray:
    """Paste an input-resolution heatmap (h, w) into a zero map of the original (H, W) at ``box``."""
    w, h = image_size
    left, top, right, bottom = (int(round(v)) for v in box)
    bw, bh = max(right - left, 1), max(bottom - top, 1)
    small = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32))  # mode "F"
    resized = np.asarray(small.resize((bw, bh), Image.BILINEAR))
    out = np.zeros((h, w), dtype=np.float32)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = resized[y0 - top:y1 - top, x0 - left:x1 - left]
    return np.clip(out, 0.0, 1.0)
