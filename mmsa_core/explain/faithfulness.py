"""Is an explanation faithful to the model? Perturb what it points at and watch the class probability.

Image (ROAD, Rong et al. 2022, with pytorch-grad-cam's noisy linear imputer): remove a fraction of the
pixels, most relevant first (MoRF) or least relevant first (LeRF), fill them in from their neighbours,
and compare the probability of the explained class. A faithful heatmap makes MoRF hurt and LeRF not:
``image_road = (Δ_LeRF - Δ_MoRF) / 2``, higher is better. ``image_confidence_change`` is pytorch-grad-cam's
"multiply the image by the heatmap" score. Pixels are ranked exactly (ties broken by a seeded shuffle),
because the library's percentile threshold removes everything when most of a CAM is 0.

Words (ERASER, DeYoung et al. 2020): comprehensiveness = p(post) - p(post without the top-k words),
higher is better; sufficiency = p(post) - p(only the top-k words), lower is better.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from pytorch_grad_cam.metrics.cam_mult_image import multiply_tensor_with_cam
from pytorch_grad_cam.metrics.road import NoisyLinearImputer

from ..encoders import ImageFeatures
from .features import repeat_image
from .words import EncodedText, remove_words


def keep_masks(cam: np.ndarray, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) float masks, 1 = keep: MoRF drops the top ``fraction`` of pixels, LeRF the bottom one."""
    rng = np.random.default_rng(seed)
    flat = cam.reshape(-1)
    order = np.lexsort((rng.random(flat.size), -flat))  # most relevant first, ties in random order
    n = int(round(fraction * flat.size))
    morf, lerf = np.ones(flat.size, np.float32), np.ones(flat.size, np.float32)
    morf[order[:n]] = 0.0
    lerf[order[flat.size - n:]] = 0.0
    return torch.from_numpy(morf.reshape(cam.shape)), torch.from_numpy(lerf.reshape(cam.shape))


def impute(x: torch.Tensor, keep: torch.Tensor, seed: int = 0, noise: float = 0.01) -> torch.Tensor:
    """ROAD's noisy linear imputation of the pixels where ``keep`` is 0, for a (3, H, W) image.

    The library's imputer draws its noise from torch's global generator; here it runs without noise and
    the same noise is added from a local, seeded generator, so results repeat exactly and concurrent
    explanations do not disturb each other's random state.
    """
    with warnings.catch_warnings():
        # the library's imputer runs np.argwhere on a tensor: a NumPy 2 deprecation, harmless here
        warnings.filterwarnings("ignore", message="__array_wrap__", category=DeprecationWarning)
        filled = NoisyLinearImputer(noise=0.0)(x, keep)
    g = torch.Generator().manual_seed(seed)
    return filled + noise * torch.randn(x.shape, generator=g) * (1.0 - keep)


@torch.no_grad()
def image_faithfulness(image_model, pixels: torch.Tensor, cam: np.ndarray, target: int,
                       fractions: tuple[float, ...] = (0.2,), seed: int = 0) -> dict[str, float]:
    """ROAD and confidence-change scores of an input-resolution ``cam`` (H, W) for a (1, 3, H, W) image.

    ``image_model`` maps pixels to logits (``ImageToLogits``); several ``fractions`` are averaged.
    """
    x = pixels[0].detach().cpu()
    batch = []
    for f in fractions:
        morf, lerf = keep_masks(cam, f, seed)
        batch += [impute(x, morf, seed), impute(x, lerf, seed)]
    batch.append(multiply_tensor_with_cam(x, torch.tensor(cam)))
    batch = torch.stack([x, *batch]).to(pixels.device)  # (1 + 2F + 1, 3, H, W)
    p = image_model(batch).softmax(-1)[:, target].float().cpu().numpy()
    d = p[1:] - p[0]
    d_morf, d_lerf = d[:-1:2], d[1:-1:2]
    return {"image_road": float(np.mean(d_lerf - d_morf) / 2), "image_road_morf": float(np.mean(d_morf)),
            "image_road_lerf": float(np.mean(d_lerf)), "image_confidence_change": float(d[-1]),
            "image_removed_fraction": float(np.mean(fractions))}


def top_words(word_scores: list[tuple[str, float]], k: int, seen: int) -> set[int]:
    """Indices of the ``k`` words (among those the model read) that push hardest towards the class."""
    order = sorted(range(seen), key=lambda w: -word_scores[w][1])
    return set(order[:k])


@torch.no_grad()
def word_faithfulness(model, encoded: EncodedText, image: ImageFeatures, target: int,
                      chosen: set[int]) -> dict[str, float]:
    """Comprehensiveness and sufficiency of the words in ``chosen`` for class index ``target``."""
    device = next(model.parameters()).device
    pad = model.text_encoder.tokenizer.pad_token_id
    rest = set(range(encoded.seen_words)) - chosen
    without, only = remove_words(encoded, chosen, pad), remove_words(encoded, rest, pad)
    ids = torch.cat([encoded.input_ids, without[0], only[0]]).to(device)  # (3, L)
    mask = torch.cat([encoded.mask, without[1], only[1]]).to(device)
    p = model.head(model.text_encoder(ids, mask), repeat_image(image, 3)).logits.softmax(-1)[:, target]
    p = p.float().cpu().numpy()
    return {"words_comprehensiveness": float(p[0] - p[1]), "words_sufficiency": float(p[0] - p[2]),
            "words_k": float(len(chosen))}
