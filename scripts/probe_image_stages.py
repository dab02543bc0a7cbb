"""Probe: which of EfficientNet-Lite0's stages carries an image's sentiment best, frozen, by a linear probe?

    python scripts/probe_image_stages.py --out docs/results.md --block probe-image-stages

Every CV post's image goes through the frozen CNN once; each stage's map is pooled (mean, plus max below
the top) and a standardised logistic regression (scikit-learn, C=0.05) is fitted on the other folds and
scored on each fold, for MVSA's ``image_label`` and for the post's label. The same five folds as every
``compare --cv`` row. It says where to tap the CNN, not what a fused model will score.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core.compare import emit_block, mean_sd  # noqa: E402
from mmsa_core.config import LABELS, TrainConfig  # noqa: E402
from mmsa_core.data import load_image  # noqa: E402
from mmsa_core.encoders.image import ImageEncoder  # noqa: E402
from mmsa_core.folds import assign_folds, cv_posts  # noqa: E402

STAGES = (4, 5, 6, 7, 8)


@torch.no_grad()
def stage_features(enc: ImageEncoder, images: list[str], batch_size: int = 64) -> dict[int, np.ndarray]:
    """stage -> (N, F) pooled maps: mean and max over the grid, the top stage (the one fusion reads) mean only."""
    enc.eval()
    out: dict[int, list] = {k: [] for k in STAGES}
    for i in range(0, len(images), batch_size):
        x = torch.stack([enc.preprocess(load_image(p)) for p in images[i:i + batch_size]])
        for k, stage in enumerate(enc.stages):
            x = stage(x)
            if k in out:
                out[k].append(x.mean((2, 3)) if k == len(enc.stages) - 1 else torch.cat([x.mean((2, 3)),
                                                                                           x.amax((2, 3))], 1))
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def probe(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    accs = []
    for f in np.unique(folds):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=3000))
        clf.fit(x[folds != f], y[folds != f])
        accs.append(float((clf.predict(x[folds == f]) == y[folds == f]).mean() * 100))
    return accs


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=TrainConfig.data_dir)
    ap.add_argument("--out", default=None)
    ap.add_argument("--block", default="probe-image-stages")
    a = ap.parse_args(argv)
    t0 = time.time()
    posts = cv_posts(a.data_dir)
    folds = assign_folds(posts, 5, 0)
    enc = ImageEncoder("efficientnet_lite0")
    feats = stage_features(enc, [p.image for p in posts])
    targets = {"image_label": np.array([LABELS.index(p.image_label) for p in posts]),
               "label": np.array([LABELS.index(p.label) for p in posts])}
    lines = [f"Command: `python scripts/probe_image_stages.py --out {a.out} --block {a.block}` "
             f"(5 folds of train+val, fold seed 0; {time.time() - t0:.0f} s with the fits).", "",
             "| EfficientNet-Lite0 stage (index in `ImageEncoder.stages`) | map | features | image_label accuracy "
             "| label accuracy |", "|---|---|---|---|---|"]
    for k in STAGES:
        x = feats[k]
        grid = "top, mean" if k == len(enc.stages) - 1 else "mean + max"
        lines.append(f"| {k} | {grid} | {x.shape[1]} | " + " | ".join(mean_sd(probe(x, y, folds))
                                                                       for y in targets.values()) + " |")
    emit_block("\n".join(lines), a.out, a.block)


if __name__ == "__main__":
    main()
