"""Heatmap over image: a pure function, so a UI can re-blend at another opacity without recomputing."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from PIL import Image

from ..data import load_image
from .geometry import Box


def overlay(image, heatmap: np.ndarray, alpha: float = 0.5, colormap: str = "jet",
            box: Box | None = None) -> Image.Image:
    """Blend a (H, W) heatmap in [0, 1] onto the image (path, bytes or PIL) of the same size.

    ``alpha`` is the heatmap's opacity (0 = image only, 1 = heatmap only). Outside ``box`` (the part the
    model never saw, see ``Explanation.crop_box``) the image is dimmed and left uncoloured, so a cropped
    margin does not read as "unimportant".
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    img = load_image(image)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (img.height, img.width):
        raise ValueError(f"Heatmap shape {heat.shape} does not match the image ({img.height}, {img.width})")
    if colormap not in colormaps:
        raise ValueError(f"Unknown colormap {colormap!r}; try 'jet', 'inferno' or 'viridis'")
    rgb = np.asarray(img, dtype=np.float32) / 255.0  # (H, W, 3)
    colour = colormaps[colormap](np.clip(heat, 0.0, 1.0))[..., :3].astype(np.float32)
    blended = (1.0 - alpha) * rgb + alpha * colour
    if box is not None:
        seen = np.zeros(heat.shape, dtype=bool)
        left, top, right, bottom = (int(round(v)) for v in box)
        seen[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)] = True
        blended = np.where(seen[..., None], blended, 0.4 * rgb)
    return Image.fromarray((np.clip(blended, 0.0, 1.0) * 255).round().astype(np.uint8))
