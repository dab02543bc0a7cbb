"""Probe: does test-time augmentation of the image help the recipe, judged on cross-validation's held-out folds?

    python scripts/probe_tta.py runs/cv/final-teachers --out docs/results.md --block cv-tta

Each fold model of the runs (``compare --cv --keep-checkpoints``) scores its own held-out fold three ways:
the image as the model sees it in the app (resize, centre crop), the same crop mirrored, and the whole
image squashed to the input size (no crop, so nothing at the edges is lost). The text is the same each
time. The rows average the views' probabilities; no weight is chosen, so every row is an honest held-out
estimate, paired against the plain view on the same folds and seeds. Each view costs one more pass of
the image trunk per prediction, so it would have to buy accuracy to be worth shipping.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core.checkpoint import load_model  # noqa: E402
from mmsa_core.compare import METRICS, emit_block, load_runs, mean_sd, metric_row  # noqa: E402
from mmsa_core.config import LABELS, TrainConfig  # noqa: E402
from mmsa_core.evaluate import compute_metrics  # noqa: E402
from mmsa_core.features import FeatureSet, MvsaFeatures, encode_images, predict_probs  # noqa: E402
from mmsa_core.folds import assign_folds, cv_posts  # noqa: E402

log = logging.getLogger(__name__)


def views(encoder) -> dict:
    """View name -> PIL image to pixel tensor. ``crop`` is the encoder's own preprocessing."""
    size = encoder.image_size
    to_tensor = encoder.preprocess.transforms[-2:]  # ToTensor, Normalize: the encoder's own
    return {"crop": encoder.preprocess,
            "mirrored crop": lambda im: encoder.preprocess(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            "whole image": T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC),
                                      *to_tensor])}


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a folder of compare --cv runs with their checkpoints")
    ap.add_argument("--data-dir", default=TrainConfig.data_dir)
    ap.add_argument("--out", default=None)
    ap.add_argument("--block", default="cv-tta")
    a = ap.parse_args(argv)
    t0 = time.time()
    runs = [r for rs in load_runs([a.runs]).values() for r in rs]
    posts = cv_posts(a.data_dir)
    folds = assign_folds(posts, runs[0]["k"], runs[0]["fold_seed"])
    index = {p.id: i for i, p in enumerate(posts)}
    y = np.array([LABELS.index(p.label) for p in posts])
    first, _ = load_model(Path(a.runs) / f"{runs[0]['model']}-s{runs[0]['seed']}-f{runs[0]['fold']}.pt")
    if first.image_encoder.split != len(first.image_encoder.stages):
        raise SystemExit("These runs fine-tune image blocks: their trunk differs per fold, which this probe "
                         "does not handle")
    # The cached features (text, and the image as the app crops it), in the posts' order.
    text = MvsaFeatures(first, a.data_dir, None, progress=False)(posts).materialize()
    trunks = {name: text.image_trunk if name == "crop"
              else encode_images(first, [p.image for p in posts], progress=True, preprocess=fn)
              for name, fn in views(first.image_encoder).items()}
    log.info("views encoded in %.0f s", time.time() - t0)
    probs = {name: {} for name in trunks}  # view -> seed -> (N, C) held-out probabilities
    for r in runs:
        rows = np.array([index[i] for i in r["ids"]])
        model, _ = load_model(Path(a.runs) / f"{r['model']}-s{r['seed']}-f{r['fold']}.pt")
        for name, trunk in trunks.items():
            fs = FeatureSet(text.text_hidden, text.text_mask, text.input_ids, trunk).select(rows)
            probs[name].setdefault(r["seed"], np.zeros((len(posts), len(LABELS))))[rows] = predict_probs(model, fs)
        log.info("seed %d fold %d scored", r["seed"], r["fold"])
    combos = {"crop (as in the app)": ["crop"], "mirrored crop": ["mirrored crop"], "whole image": ["whole image"],
              "crop + mirrored crop": ["crop", "mirrored crop"], "crop + whole image": ["crop", "whole image"],
              "all three views": list(trunks)}
    seeds = sorted(probs["crop"])
    table = {}
    for name, parts in combos.items():
        table[name] = [metric_row(compute_metrics(y[folds == f], sum(probs[v][s] for v in parts)[folds == f]
                                                  .argmax(1), LABELS))
                       for s in seeds for f in np.unique(folds)]
    ref = np.array([r["accuracy"] for r in table["crop (as in the app)"]])
    lines = [f"Command: `python scripts/probe_tta.py {a.runs} --out {a.out} --block {a.block}` "
             f"({len(np.unique(folds))} folds × {len(seeds)} seed(s), {time.time() - t0:.0f} s on this machine).", "",
             "| image views averaged (argmax) | CV accuracy | Δ accuracy, paired | CV weighted F1 | CV macro F1 | "
             "CV neutral recall |", "|---|---|---|---|---|---|"]
    for name, rows in table.items():
        acc = np.array([r["accuracy"] for r in rows])
        delta = "—" if name == "crop (as in the app)" else mean_sd(acc - ref)
        lines.append(f"| {name} | {mean_sd(acc)} | {delta} | "
                     + " | ".join(mean_sd([r[m] for r in rows]) for m in METRICS[1:]) + " |")
    emit_block("\n".join(lines), a.out, a.block)


if __name__ == "__main__":
    main()
