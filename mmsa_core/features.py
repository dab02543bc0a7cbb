"""Encode posts once with the frozen trunks, cache the result on disk, and predict from cached features.

Keys combine the encoder, where it is cut (frozen layers), the text length, a fingerprint of the frozen
weights and a hash of the posts, so a cache is reused only when it matches exactly. The cache lives under
the app's data folder (``$MMSA_CACHE_DIR``, else ``$MMSA_DATA_DIR/cache``, else ``./data/cache``); files are
written under unique temporary names and renamed into place, so two processes filling the same cache
leave a valid file, and the folder is kept under a size bound (least recently used files go first).

This module is on the inference side: evaluation, ensembles and retraining's comparisons use it, and it
imports nothing from training.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .data import Post, load_image, load_mvsa, posts_hash

log = logging.getLogger(__name__)

DEFAULT_CACHE_GB = 8.0  # $MMSA_CACHE_MAX_GB: the whole MVSA set is 0.5-1.7 GB per encoder cut


@dataclass
class FeatureSet:
    """Trunk outputs for a list of posts, row-aligned with it.

    ``rows`` makes it a view: row i is row ``rows[i]`` of the tensors, so selecting a subset (a fold, the
    training posts) copies nothing; batches gather their rows on the fly."""

    text_hidden: torch.Tensor  # (N, L, Dt)
    text_mask: torch.Tensor  # (N, L) bool
    input_ids: torch.Tensor  # (N, L)
    image_trunk: torch.Tensor  # (N, C, h, w)
    rows: torch.Tensor | None = None  # (M,) indices into the tensors; None = all of them, in order

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.input_ids)

    def _rows(self, idx) -> torch.Tensor:
        idx = torch.as_tensor(idx, dtype=torch.long)
        return self.rows[idx] if self.rows is not None else idx

    @property
    def lengths(self) -> torch.Tensor:
        """(M,) real tokens per post."""
        mask = self.text_mask if self.rows is None else self.text_mask[self.rows]
        return mask.sum(1)

    def select(self, idx) -> "FeatureSet":
        """The posts at ``idx``, as a view (no copy)."""
        return FeatureSet(self.text_hidden, self.text_mask, self.input_ids, self.image_trunk, self._rows(idx))

    def materialize(self) -> "FeatureSet":
        if self.rows is None:
            return self
        r = self.rows
        return FeatureSet(self.text_hidden[r], self.text_mask[r], self.input_ids[r], self.image_trunk[r])

    @staticmethod
    def concat(parts: list["FeatureSet"]) -> "FeatureSet":
        if len(parts) == 1:
            return parts[0]
        parts = [p.materialize() for p in parts]
        return FeatureSet(*(torch.cat([getattr(p, f) for p in parts]) for f in
                            ("text_hidden", "text_mask", "input_ids", "image_trunk")))

    def batch(self, idx, device) -> tuple[torch.Tensor, ...]:
        """A batch, trimmed to the longest text in it (padding beyond is wasted work)."""
        r = self._rows(idx)
        mask = self.text_mask[r]
        n = int(mask.sum(1).max())
        return (self.text_hidden[r, :n].float().to(device), mask[:, :n].to(device),
                self.input_ids[r, :n].to(device), self.image_trunk[r].float().to(device))


def default_cache_dir() -> Path:
    """``$MMSA_CACHE_DIR``, else ``cache`` inside the app's data folder (``$MMSA_DATA_DIR`` or ``./data``)."""
    if os.environ.get("MMSA_CACHE_DIR"):
        return Path(os.environ["MMSA_CACHE_DIR"])
    return Path(os.environ.get("MMSA_DATA_DIR") or "data") / "cache"


def cache_limit_bytes() -> int:
    return int(float(os.environ.get("MMSA_CACHE_MAX_GB") or DEFAULT_CACHE_GB) * 1e9)


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:20]


def weights_fingerprint(modules) -> str:
    """A short hash of the weights of ``modules``: a cache of fine-tuned layers' outputs is keyed by them."""
    h = hashlib.sha256()
    for module in modules:
        for name, t in module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_texts(model, texts: list[str], batch_size: int = 64, progress: bool = False,
                 dtype: torch.dtype = torch.float32):
    enc = model.text_encoder
    enc.train(False)  # inference behaviour, so a post encodes the same alone or in any batch
    device = next(model.parameters()).device
    hidden, masks, ids = None, [], []  # hidden states filled in place: no second copy of them at the end
    for i in tqdm(range(0, len(texts), batch_size), desc="text", disable=not progress):
        tok = enc.tokenize(texts[i:i + batch_size])
        x, m = tok["input_ids"].to(device), tok["attention_mask"].to(device)
        h = enc.forward_trunk(x, m).to(dtype).cpu()
        if hidden is None:
            hidden = h.new_empty((len(texts), *h.shape[1:]))
        hidden[i:i + len(h)] = h
        masks.append(m.cpu())
        ids.append(x.cpu())
    return hidden, torch.cat(masks), torch.cat(ids)


@torch.no_grad()
def encode_images(model, images: list, batch_size: int = 8, progress: bool = False,
                  dtype: torch.dtype = torch.float32, preprocess=None):
    """Trunk outputs of images given as paths, bytes or PIL images; ``preprocess`` (a PIL image to a pixel
    tensor) replaces the encoder's own resize and crop, e.g. for another view of the image.

    Batches of 8: a batch of 32's early-stage activations took about 0.6 GB more peak memory and were no
    faster on a 2-core CPU (``bench/bench_features.py --image-batch 8 32``). A post's output does not depend
    on its batch."""
    enc = model.image_encoder
    enc.train(False)  # BatchNorm with its running statistics, never the batch's own
    preprocess = preprocess or enc.preprocess
    device = next(model.parameters()).device
    out = None  # filled in place: no second copy of the whole set at the end
    for i in tqdm(range(0, len(images), batch_size), desc="images", disable=not progress):
        pixels = torch.stack([preprocess(load_image(x)) for x in images[i:i + batch_size]]).to(device)
        y = enc.forward_trunk(pixels).to(dtype).cpu()
        if out is None:
            out = y.new_empty((len(images), *y.shape[1:]))
        out[i:i + len(y)] = y
    return out


def _write_atomic(value, path: Path) -> None:
    """torch.save under a unique temporary name in the same folder, then rename: concurrent writers of
    the same key each leave a complete file, and a reader never sees a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(value, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune_cache(folder: Path, limit: int | None = None, keep: tuple[Path, ...] = ()) -> list[Path]:
    """Delete the least recently used cache files until the folder holds at most ``limit`` bytes."""
    limit = cache_limit_bytes() if limit is None else limit
    files = [p for p in folder.glob("*.pt") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    removed = []
    for p in sorted(files, key=lambda p: p.stat().st_mtime):
        if total <= limit:
            break
        if p in keep:
            continue
        total -= p.stat().st_size
        p.unlink(missing_ok=True)
        removed.append(p)
    if removed:
        log.info("feature cache over %.1f GB: removed %d old file(s)", limit / 1e9, len(removed))
    return removed


def _cached(path: Path, compute):
    if path.exists():
        try:
            value = torch.load(path, map_location="cpu", weights_only=True)
            os.utime(path)  # recently used: the size bound removes other files first
            return value
        except Exception:  # a file damaged on disk: recompute rather than fail
            log.warning("Ignoring unreadable cache file %s", path)
    value = compute()
    _write_atomic(value, path)
    prune_cache(path.parent, keep=(path,))
    return value


def encode_posts(model, posts: list[Post], cache_dir: str | Path | None = None,
                 progress: bool = True, dtype: torch.dtype = torch.float32) -> FeatureSet:
    """Trunk features for ``posts``, read from or written to the cache (``cache_dir=""`` disables it).

    ``dtype=torch.float16`` keeps (and caches) them at half the memory; batches are float32 either way."""
    cache = default_cache_dir() if cache_dir is None else (Path(cache_dir) if cache_dir else None)
    t, i, cfg = model.text_encoder, model.image_encoder, model.cfg
    h = posts_hash(posts, with_labels=False)
    tag = () if dtype == torch.float32 else (str(dtype),)  # float32 keys stay as they were
    text_fn = lambda: dict(zip(("hidden", "mask", "ids"), encode_texts(model, [p.text for p in posts],
                                                                       progress=progress, dtype=dtype)))
    image_fn = lambda: {"trunk": encode_images(model, [p.image for p in posts], progress=progress, dtype=dtype)}
    if cache is None:
        tx, im = text_fn(), image_fn()
    else:
        tx = _cached(cache / f"text-{_key(cfg.text_encoder, t.split, cfg.max_text_len, trunk_tag(t), h, *tag)}.pt",
                     text_fn)
        im = _cached(cache / f"image-{_key(cfg.image_encoder, i.split, trunk_tag(i), h, *tag)}.pt", image_fn)
        log.info("features for %d posts from %s", len(posts), cache)
    return FeatureSet(tx["hidden"], tx["mask"], tx["ids"], im["trunk"])


def trunk_tag(encoder) -> str:
    """What besides the encoder's name decides its trunk's output: empty for pretrained weights (the name
    says it all), a fingerprint when the trunk holds fine-tuned layers (``encoder.trunk_fingerprint``)."""
    return getattr(encoder, "trunk_fingerprint", "") or ""


def feature_cut(model) -> tuple:
    """What decides a model's trunk features: models with the same cut share one feature set."""
    t, i = model.text_encoder, model.image_encoder
    return (model.cfg.text_encoder, t.split, model.cfg.max_text_len, getattr(t, "trunk_fingerprint", ""),
            model.cfg.image_encoder, i.split)


@torch.no_grad()
def predict_probs(model, fs: FeatureSet, batch_size: int = 128, view: str = "both") -> np.ndarray:
    """(N, C) class probabilities from cached trunk features."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(fs), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(fs)))
        out.append(model.forward_from_trunk(*fs.batch(idx, device), view=view).logits.softmax(-1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(model.labels)), dtype=np.float32)


class MvsaFeatures:
    """Trunk features of any posts: MVSA posts come from one cache of the whole data set (encoded once),
    other posts (from the annotation store) are encoded and cached on their own.

    Only the labelled splits (train, val) are encoded by default: the held-back test split and the
    unlabeled posts never train. ``data_dir`` None means there is no MVSA on this machine: every post is
    encoded on its own."""

    def __init__(self, model, data_dir: str | Path | None, cache_dir: str | Path | None = None,
                 progress: bool = True, whole: bool = True, splits: tuple[str, ...] = ("train", "val"),
                 dtype: torch.dtype = torch.float32):
        self.model, self.cache, self.progress, self.dtype = model, cache_dir, progress, dtype
        self.whole = whole and data_dir is not None  # a smoke run on a slice encodes only that slice
        self.all = [p for p in load_mvsa(data_dir) if p.split in splits] if self.whole else []
        self.row = {p.id: (0, i) for i, p in enumerate(self.all)}  # post id -> (part, row in that part)
        self.parts: list[FeatureSet] = []  # 0: the whole MVSA set; then one part per batch of other posts

    def __call__(self, posts: list[Post]) -> FeatureSet:
        if not self.whole:
            return encode_posts(self.model, posts, self.cache, self.progress, self.dtype)
        if not self.parts:
            self.parts.append(encode_posts(self.model, self.all, self.cache, self.progress, self.dtype))
        outside = list({p.id: p for p in posts if p.id not in self.row}.values())
        if outside:  # posts MVSA does not have (uploads, audit posts): a part of their own, never a copy of MVSA's
            self.parts.append(encode_posts(self.model, outside, self.cache, self.progress, self.dtype))
            self.row.update({p.id: (len(self.parts) - 1, i) for i, p in enumerate(outside)})
        where = [self.row[p.id] for p in posts]
        used = sorted({k for k, _ in where})
        if len(used) == 1:  # the usual case: a view, nothing copied
            return self.parts[used[0]].select([i for _, i in where])
        # Mixed parts: copy only the selected rows, part by part, then put them back in the posts' order.
        order = sorted(range(len(where)), key=lambda j: where[j][0])  # stable: by part, then as given
        joined = FeatureSet.concat([self.parts[k].select([i for kk, i in where if kk == k]) for k in used])
        return joined.select(torch.argsort(torch.as_tensor(order)))
