"""Choose a decision bias by cross-validation and write it into a checkpoint.

    python -m mmsa_core.calibrate runs/cv/elr1e4 --label neutral --metric weighted_f1 \\
        --checkpoint mmsa_core/weights/default.pt --out docs/results.md --block cv-bias

Cross-entropy on a skewed set (MVSA-Single is 11% neutral) leaves the rare class under-predicted. A
constant added to that class's logit moves the decision boundary without retraining. The constant is
chosen on the held-out probabilities that ``compare --cv`` saved for a recipe (every post of train+val,
held out once per seed), never on val alone, and its own estimate is nested: each fold is scored with
the bias chosen on the other folds only. ``--checkpoint`` writes the bias into the model's config
(``logit_bias``), which ``MultimodalClassifier`` adds to its logits at inference (not while training), stores
the nested estimate as the checkpoint's ``metrics["cv"]``, and re-scores its stored val metrics so they describe
the model as it now decides (a model refit on train+val keeps no val metrics: they would be in-sample).
A bias whose nested estimate does not beat argmax on the metric it was chosen for is not kept: the model
then decides by argmax (bias 0) and the stored estimate is argmax's. ``--average-seeds`` scores an ensemble
of the recipe's seeds: each fold's held-out probabilities are averaged over its seeds first (one run per fold),
as an ensemble of those seeds would decide.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .checkpoint import read_checkpoint, trained_on_val, write_checkpoint
from .compare import METRICS, emit_block, load_runs, mean_sd, metric_row, oof_by_fold
from .config import LABELS
from .evaluate import compute_metrics, evaluate_checkpoint, format_metrics

GRID = np.round(np.arange(-1.0, 2.0001, 0.05), 2)


def biased_argmax(probs: np.ndarray, index: int, bias: float) -> np.ndarray:
    """Predictions after adding ``bias`` to label ``index``'s logit (log-probability: the same argmax)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0))
    logits[:, index] += bias
    return logits.argmax(1)


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    return metric_row(compute_metrics(y, pred, LABELS))


def choose_bias(y: np.ndarray, probs: np.ndarray, index: int, metric: str, grid=GRID) -> float:
    """The bias on the grid that scores best on ``metric``; ties go to the smallest change."""
    vals = np.array([scores(y, biased_argmax(probs, index, b))[metric] for b in grid])
    best = np.flatnonzero(vals >= vals.max() - 1e-9)
    return float(grid[best[np.argmin(np.abs(grid[best]))]])


def nested(runs: list[dict], index: int, metric: str) -> tuple[list[dict], list[dict], list[float]]:
    """Per run: metrics without a bias, metrics with the bias chosen on the other folds' runs, that bias."""
    plain, biased, chosen = [], [], []
    for run in runs:
        others = [r for r in runs if r["fold"] != run["fold"]]
        if not others:
            raise ValueError("Nested selection needs runs of at least two folds")
        b = choose_bias(np.concatenate([r["y"] for r in others]), np.concatenate([r["probs"] for r in others]),
                        index, metric)
        y, p = np.asarray(run["y"]), np.asarray(run["probs"])
        plain.append(scores(y, p.argmax(1)))
        biased.append(scores(y, biased_argmax(p, index, b)))
        chosen.append(b)
    return plain, biased, chosen


def cv_estimate(runs: list[dict], index: int, chosen: list[float], source: str) -> dict:
    """The nested estimate as stored metrics: mean and sd over runs, and the confusion matrix pooled over them."""
    per_run = [compute_metrics(r["y"], biased_argmax(r["probs"], index, b), LABELS) for r, b in zip(runs, chosen)]
    rows = [metric_row(m) for m in per_run]
    return {**{m: float(np.mean([r[m] for r in rows])) for m in METRICS},
            **{f"{m}_sd": float(np.std([r[m] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for m in METRICS},
            "n": int(sum(m["n"] for m in per_run)), "runs": len(runs), "labels": list(LABELS), "source": source,
            "confusion_matrix": np.sum([m["confusion_matrix"] for m in per_run], 0).tolist()}


def write_bias(checkpoint: str | Path, index: int, bias: float, record: dict, data_dir: str | None = None,
               cv: dict | None = None) -> dict | None:
    """Set the checkpoint's ``logit_bias`` (every member's, for an ensemble), record how it was chosen and
    store ``cv`` (the nested estimate) as ``metrics["cv"]``. With ``data_dir``, the stored val metrics are
    recomputed with the bias (returned), unless the model trained on val: then they are dropped."""
    ckpt = read_checkpoint(checkpoint)
    for cfg in ([m["config"] for m in ckpt["members"]] if ckpt.get("kind") == "ensemble" else [ckpt["config"]]):
        if list(cfg["labels"]) != list(LABELS):
            raise ValueError(f"{checkpoint} predicts {cfg['labels']}; the CV runs are over {list(LABELS)}")
        cfg["logit_bias"] = [bias if i == index else 0.0 for i in range(len(LABELS))]
    ckpt["calibration"] = record
    if cv is not None:
        ckpt["metrics"] = {**ckpt.get("metrics", {}), "cv": cv}
    in_sample = trained_on_val(ckpt)
    if in_sample:
        ckpt["metrics"] = {k: v for k, v in ckpt.get("metrics", {}).items() if k != "val"}
    write_checkpoint(ckpt, checkpoint)
    if data_dir is None or in_sample:
        return None
    val = evaluate_checkpoint(str(checkpoint), "val", data_dir)
    ckpt["metrics"] = {**ckpt.get("metrics", {}), "val": {**val, "epoch": ckpt.get("metrics", {}).get("val", {}).get(
        "epoch", 0)}}
    write_checkpoint(ckpt, checkpoint)
    return val


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cv_dir", help="a --save-dir of `compare --cv` (the recipe's held-out probabilities)")
    ap.add_argument("--label", default="neutral", choices=LABELS, help="the label whose logit is shifted")
    ap.add_argument("--metric", default="weighted_f1", choices=METRICS,
                    help="what the bias maximises (default: weighted F1, what training selects on)")
    ap.add_argument("--checkpoint", help="write the bias chosen on all runs into this checkpoint")
    ap.add_argument("--out", help="Markdown file for the table (e.g. docs/results.md)")
    ap.add_argument("--block", default="cv-bias", help="name of the table's block in --out")
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single", help="re-scores the checkpoint's val here")
    ap.add_argument("--average-seeds", action="store_true",
                    help="score the seeds' ensemble: average each fold's probabilities over its seeds")
    args = ap.parse_args(argv)
    groups = load_runs([args.cv_dir])
    if len(groups) != 1:
        raise SystemExit(f"{args.cv_dir} holds runs of {len(groups) or 'no'} models ({sorted(groups)}); "
                         "give a folder of one recipe")
    runs = [{**r, "y": np.asarray(r["y"]), "probs": np.asarray(r["probs"])} for r in next(iter(groups.values()))]
    n_folds, n_seeds = len({r["fold"] for r in runs}), len({r["seed"] for r in runs})
    if args.average_seeds:  # one run per fold: the mean of its seeds' probabilities, as an ensemble decides
        runs = [{"fold": f, "seed": "mean", "y": y, "probs": p} for f, (_, y, p) in oof_by_fold(runs).items()]
    index = LABELS.index(args.label)
    plain, biased, chosen = nested(runs, index, args.metric)
    bias = choose_bias(np.concatenate([r["y"] for r in runs]), np.concatenate([r["probs"] for r in runs]),
                       index, args.metric)
    gain = float(np.mean([s[args.metric] for s in biased]) - np.mean([s[args.metric] for s in plain]))
    kept = gain > 0  # else the nested estimate says the bias does not help what it is chosen for: argmax
    bias = bias if kept else 0.0
    cv = cv_estimate(runs, index, chosen if kept else [0.0] * len(runs),
                     f"nested cross-validation of {Path(args.cv_dir).name}"
                     + (f" ({n_seeds} seeds averaged per fold)" if args.average_seeds else "")
                     + ("" if kept else " (argmax: the bias did not help)"))
    soup = runs[0].get("soup_of_seeds")  # records of scripts/probe_soup.py: one model per fold, a mean of weights
    what = (f"{n_folds} folds, each the mean of {n_seeds} seeds' probabilities" if args.average_seeds else
            f"{n_folds} folds, each one model averaging the weights of seeds {soup}" if soup else
            f"{n_folds} folds × {n_seeds} seed{'s' if n_seeds > 1 else ''}")
    cmd = "python -m mmsa_core.calibrate " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    lines = [f"Command: `{cmd}` ({what} of `{Path(args.cv_dir).name}`).", "",
             "| decision | CV accuracy | CV weighted F1 | CV macro F1 | CV neutral recall |", "|---|---|---|---|---|",
             "| argmax | " + " | ".join(mean_sd([s[m] for s in plain]) for m in METRICS) + " |",
             f"| {args.label} logit {'+' if min(chosen) >= 0 else ''}{min(chosen):.2f}…{max(chosen):+.2f}, chosen "
             f"on the other folds for {args.metric} (nested) | "
             + " | ".join(mean_sd([s[m] for s in biased]) for m in METRICS) + " |", "",
             (f"Chosen on all {len(runs)} runs: {args.label} logit {bias:+.2f}." if kept else
              f"Nested, the bias changes {args.metric} by {gain:+.2f}: it does not help what it is chosen for, so "
              f"the model decides by argmax ({args.label} logit +0.00)."), "",
             f"Confusion matrix of the {'nested decision' if kept else 'argmax'}, pooled over the {len(runs)} runs "
             f"(rows = true {' / '.join(LABELS)}, columns = predicted): `{cv['confusion_matrix']}`."]
    emit_block("\n".join(lines), args.out, args.block)
    if args.checkpoint:
        val = write_bias(args.checkpoint, index, bias, {
            "label": args.label, "bias": bias, "metric": args.metric, "kept": kept,
            "cv_dir": Path(args.cv_dir).name, "runs": len(runs), "average_seeds": args.average_seeds,
            "nested": {m: float(np.mean([s[m] for s in biased])) for m in METRICS},
            "argmax": {m: float(np.mean([s[m] for s in plain])) for m in METRICS},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, args.data_dir, cv)
        print(f"wrote logit_bias {bias:+.2f} on {args.label} and the nested estimate into {args.checkpoint}")
        if val is None:
            print("it trained on MVSA val, so val is not re-scored (it would be in-sample)")
        else:
            print("val as it now decides:\n" + format_metrics(val))


if __name__ == "__main__":
    main()
