"""Encode posts once with the frozen trunks and cache the result on disk.

Keys combine the encoder, where it is cut (frozen layers), the text length and a hash of the posts, so a
cache is reused only when it matches exactly.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import Post, load_image, posts_hash
from .model import MultimodalClassifier

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Trunk outputs for a list of posts, row-aligned with it."""

    text_hidden: torch.Tensor  # (N, L, Dt)
    text_mask: torch.Tensor  # (N, L) bool
    input_ids: torch.Tensor  # (N, L)
    image_trunk: torch.Tensor  # (N, C, h, w)

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, idx) -> "FeatureSet":
        return FeatureSet(self.text_hidden[idx], self.text_mask[idx], self.input_ids[idx], self.image_trunk[idx])

    @staticmethod
    def concat(parts: list["FeatureSet"]) -> "FeatureSet":
        if len(parts) == 1:
            return parts[0]
        return FeatureSet(*(torch.cat([getattr(p, f) for p in parts]) for f in
                            ("text_hidden", "text_mask", "input_ids", "image_trunk")))

    def batch(self, idx, device) -> tuple[torch.Tensor, ...]:
        """A training batch, trimmed to the longest text in it (padding beyond is wasted work)."""
        mask = self.text_mask[idx]
        n = int(mask.sum(1).max())
        return (self.text_hidden[idx, :n].to(device), mask[:, :n].to(device), self.input_ids[idx, :n].to(device),
                self.image_trunk[idx].to(device))


def default_cache_dir() -> Path:
    return Path(os.environ.get("MMSA_CACHE_DIR", "data/cache"))


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20]


@torch.no_grad()
def encode_texts(model: MultimodalClassifier, texts: list[str], batch_size: int = 64, progress: bool = False):
    enc = model.text_encoder
    enc.train(False)  # inference behaviour, so a post encodes the same alone or in any batch
    device = next(model.parameters()).device
    hidden, masks, ids = [], [], []
    for i in tqdm(range(0, len(texts), batch_size), desc="text", disable=not progress):
        tok = enc.tokenize(texts[i:i + batch_size])
        x, m = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        hidden.append(enc.forward_trunk(x, m).float().cpu())
        masks.append(m.cpu())
        ids.append(x.cpu())
    return torch.cat(hidden), torch.cat(masks), torch.cat(ids)


@torch.no_grad()
def encode_images(model: MultimodalClassifier, images: list, batch_size: int = 32, progress: bool = False):
    """Trunk outputs of images given as paths, bytes or PIL images."""
    enc = model.image_encoder
    enc.train(False)  # BatchNorm with its running statistics, never the batch's own
    device = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(images), batch_size), desc="images", disable=not progress):
        pixels = torch.stack([enc.preprocess(load_image(x)) for x in images[i:i + batch_size]]).to(device)
        out.append(enc.forward_trunk(pixels).float().cpu())
    return torch.cat(out)


def _cached(path: Path, compute):
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a cache write cut short: recompute rather than fail
            log.warning("Ignoring unreadable cache file %s", path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(value, tmp)
    tmp.replace(path)
    return value


def encode_posts(model: MultimodalClassifier, posts: list[Post], cache_dir: str | Path | None = None,
                 progress: bool = True) -> FeatureSet:
    """Trunk features for ``posts``, read from or written to the cache (``cache_dir=""`` disables it)."""
    cache = default_cache_dir() if cache_dir is None else (Path(cache_dir) if cache_dir else None)
    t, i, cfg = model.text_encoder, model.image_encoder, model.cfg
    h = posts_hash(posts, with_labels=False)
    text_fn = lambda: dict(zip(("hidden", "mask", "ids"), encode_texts(model, [p.text for p in posts],
                                                                       progress=progress)))
    image_fn = lambda: {"trunk": encode_images(model, [p.image for p in posts], progress=progress)}
    if cache is None:
        tx, im = text_fn(), image_fn()
    else:
        tx = _cached(cache / f"text-{_key(cfg.text_encoder, t.split, cfg.max_text_len, h)}.pt", text_fn)
        im = _cached(cache / f"image-{_key(cfg.image_encoder, i.split, h)}.pt", image_fn)
        log.info("features for %d posts from %s", len(posts), cache)
    return FeatureSet(tx["hidden"], tx["mask"], tx["ids"], im["trunk"])
