"""Metrics on a split: accuracy, weighted/macro F1, per-class P/R/F1, confusion matrix (scikit-learn).

    python -m mmsa_core.evaluate CHECKPOINT --split val [--json out.json] [--confusion cm.png]
    python -m mmsa_core.evaluate CHECKPOINT --view text --target text_label   # the app's text-only view

``--view text|image`` scores what the app shows as the text-only and image-only views (the other modality
blanked); ``--target text_label|image_label`` scores against MVSA's per-modality labels instead of the
post's label (posts without that label are left out).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

log = logging.getLogger(__name__)


def compute_metrics(y_true, y_pred, labels: tuple[str, ...]) -> dict:
    """Plain-float metrics (percentages for accuracy and F1) keyed by name; labels give the class order."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    k = np.arange(len(labels))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=k, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": 100 * float(accuracy_score(y_true, y_pred)),
        "weighted_f1": 100 * float(f1_score(y_true, y_pred, labels=k, average="weighted", zero_division=0)),
        "macro_f1": 100 * float(f1_score(y_true, y_pred, labels=k, average="macro", zero_division=0)),
        "per_class": {lab: {"precision": float(p[c]), "recall": float(r[c]), "f1": float(f[c]), "support": int(s[c])}
                      for c, lab in enumerate(labels)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=k).tolist(),
        "labels": list(labels),
    }


def format_metrics(m: dict) -> str:
    lines = [f"n={m['n']}  accuracy {m['accuracy']:.2f}  weighted F1 {m['weighted_f1']:.2f}  "
             f"macro F1 {m['macro_f1']:.2f}", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for lab, c in m["per_class"].items():
        lines.append(f"{lab:<10}{c['precision']:>10.3f}{c['recall']:>10.3f}{c['f1']:>10.3f}{c['support']:>9d}")
    lines.append("confusion matrix (rows = true, columns = predicted): " + " ".join(m["labels"]))
    lines += ["  " + " ".join(f"{v:>5d}" for v in row) for row in m["confusion_matrix"]]
    return "\n".join(lines)


def plot_confusion(m: dict, path: str | Path, title: str = "") -> Path:
    """Write the confusion matrix as a PNG (matplotlib via scikit-learn's display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    ConfusionMatrixDisplay(np.array(m["confusion_matrix"]), display_labels=m["labels"]).plot(
        ax=ax, colorbar=False, cmap="Blues")
    ax.set_title(title or f"acc {m['accuracy']:.1f} / wF1 {m['weighted_f1']:.1f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


TARGETS = ("label", "text_label", "image_label")


def evaluate_checkpoint(checkpoint: str | None, split: str, data_dir: str, cache_dir: str | None = None,
                        view: str = "both", target: str = "label") -> dict:
    """Metrics of a checkpoint on a labelled MVSA split, from cached trunk features. ``view``: both | text |
    image (the model with the other modality blanked); ``target``: which of MVSA's labels to score against.
    ``in_sample`` says whether the checkpoint trained on that split (train, or val after a refit)."""
    from .checkpoint import load_model, trained_on_val
    from .data import load_mvsa
    from .features import encode_posts, predict_probs

    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; choose from {list(TARGETS)}")
    model, meta = load_model(checkpoint)
    posts = [p for p in load_mvsa(data_dir) if p.split == split]
    if not posts or any(p.label is None for p in posts):
        raise SystemExit(f"Split {split!r} has no labels here (the test labels are held back): "
                         "score it with `python -m mmsa_core.predict` instead")
    posts = [p for p in posts if getattr(p, target) in model.labels]
    probs = predict_probs(model, encode_posts(model, posts, cache_dir), view=view)
    y = [model.labels.index(getattr(p, target)) for p in posts]
    return {**compute_metrics(y, probs.argmax(1), model.labels),
            "in_sample": split == "train" or (split == "val" and trained_on_val(meta))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint file (default: the shipped model)")
    ap.add_argument("--split", default="val", choices=["train", "val"])
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--view", default="both", choices=["both", "text", "image"],
                    help="score the text-only or image-only view (the other modality blanked)")
    ap.add_argument("--target", default="label", choices=list(TARGETS),
                    help="score against the post's label or MVSA's per-modality label")
    ap.add_argument("--json", help="write the metrics here")
    ap.add_argument("--confusion", help="write the confusion matrix PNG here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    m = evaluate_checkpoint(args.checkpoint, args.split, args.data_dir, args.cache_dir, args.view, args.target)
    if m["in_sample"]:
        print(f"Note: this model trained on MVSA {args.split}, so these figures are in-sample, not an estimate of "
              "accuracy on new posts (that is the recipe's cross-validation, docs/results.md).")
    print(format_metrics(m))
    if args.json:
        Path(args.json).write_text(json.dumps(m, indent=2))
    if args.confusion:
        plot_confusion(m, args.confusion)


if __name__ == "__main__":
    main()
