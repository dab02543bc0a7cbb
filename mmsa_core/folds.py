"""Cross-validation folds over MVSA-Single train+val: stratified by label, exact duplicates kept together.

Val has 450 posts (one standard error of accuracy is about 2 points), so every choice (model family,
loss, layers fine-tuned, ensemble members, thresholds) is made on k-fold cross-validation over the 4,061
labelled posts instead. Posts with the same text and the same image bytes form one group and always land
in the same fold, so a duplicate never sits on both sides of a split. The assignment depends only on the
posts and ``seed``: every model compared with the same seed sees the same folds, which is what lets
out-of-fold predictions of different models be averaged into an honest ensemble estimate.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .data import Post, load_mvsa

CV_SPLITS = ("train", "val")


def content_key(post: Post) -> str:
    """sha256 over the stripped text and the image's bytes: equal for exact duplicate posts."""
    h = hashlib.sha256(post.text.strip().encode())
    h.update(b"\x00")
    if post.image and Path(post.image).is_file():
        h.update(hashlib.sha256(Path(post.image).read_bytes()).digest())
    return h.hexdigest()


def assign_folds(posts: list[Post], k: int = 5, seed: int = 0) -> np.ndarray:
    """(N,) fold index per post, stratified by label, duplicate groups kept whole (scikit-learn's
    StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if any(p.label is None for p in posts):
        raise ValueError("Cross-validation needs labelled posts only")
    keys = [content_key(p) for p in posts]
    groups = np.unique(keys, return_inverse=True)[1]
    y = np.array([p.label for p in posts])
    folds = np.full(len(posts), -1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(posts)), y, groups)):
        folds[test] = f
    return folds


def cv_posts(data_dir: str | Path, limit: int = 0) -> list[Post]:
    """The labelled MVSA posts cross-validation runs on (train + val; ``limit`` keeps the first N)."""
    posts = [p for p in load_mvsa(data_dir) if p.split in CV_SPLITS and p.label is not None]
    return posts[:limit] if limit else posts
