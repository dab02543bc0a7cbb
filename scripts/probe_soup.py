"""Probe: is the mean of several runs' weights (a "model soup") as good as their ensemble, at one model's cost?

    python scripts/probe_soup.py runs/cv/soup --seeds 0 1 2 --out docs/results.md --block cv-soup --save-dir runs/cv/soup-avg

The runs: ``compare --cv --keep-checkpoints`` of one recipe with ``--set init_seed=0`` and several ``--seeds``
(``--seeds`` here takes a subset of them):
every run of a fold starts from the same weights (the pretrained encoders, the heads drawn with seed 0) and
differs in data order and dropout only. For every fold, the first k seeds' checkpoints are averaged into one
model (``mmsa_core.ensemble.average_weights``) that scores the fold's held-out posts. Rows, all on the same folds:
one run, the soups, and the seeds' ensemble (the mean of their probabilities: k times the compute). Nothing is
chosen on the held-out posts, so every row is an honest estimate; the soups are paired against the mean of the
single runs on the same fold. ``--save-dir`` writes the largest soup's held-out probabilities as ``compare --cv``
records (``seed`` is the runs' init seed; ``soup_of_seeds`` names the seeds), which ``calibrate`` and
``compare --cv-paired`` read.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core.checkpoint import read_checkpoint  # noqa: E402
from mmsa_core.compare import METRICS, emit_block, ensemble_scores, load_runs, mean_sd, metric_row  # noqa: E402
from mmsa_core.config import LABELS, TrainConfig  # noqa: E402
from mmsa_core.ensemble import average_weights, build_member  # noqa: E402
from mmsa_core.evaluate import compute_metrics  # noqa: E402
from mmsa_core.features import MvsaFeatures, predict_probs  # noqa: E402
from mmsa_core.folds import cv_posts  # noqa: E402

log = logging.getLogger(__name__)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a folder of compare --cv runs (one init seed, several seeds) with checkpoints")
    ap.add_argument("--data-dir", default=TrainConfig.data_dir)
    ap.add_argument("--out", default=None)
    ap.add_argument("--block", default="cv-soup")
    ap.add_argument("--save-dir", help="write the largest soup's held-out probabilities here, as compare --cv does")
    ap.add_argument("--seeds", nargs="+", type=int, help="use only these seeds' runs (default: every seed there)")
    a = ap.parse_args(argv)
    t0 = time.time()
    groups = load_runs([a.runs])
    if len(groups) != 1:
        raise SystemExit(f"{a.runs} holds runs of {len(groups) or 'no'} models: give a folder of one recipe")
    runs = next(iter(groups.values()))
    if a.seeds:
        if absent := sorted(set(a.seeds) - {r["seed"] for r in runs}):
            raise SystemExit(f"{a.runs} has no runs of seed(s) {absent}")
        runs = [r for r in runs if r["seed"] in a.seeds]
    seeds, folds = sorted({r["seed"] for r in runs}), sorted({r["fold"] for r in runs})
    if len(seeds) < 2:
        raise SystemExit(f"{a.runs} holds one seed: a weight average needs runs of several seeds")
    by_key = {(r["fold"], r["seed"]): r for r in runs}
    if missing := [(f, s) for f in folds for s in seeds if (f, s) not in by_key]:
        raise SystemExit(f"Runs missing (fold, seed): {missing}")
    posts = {p.id: p for p in cv_posts(a.data_dir)}
    sizes = list(range(2, len(seeds) + 1))
    soups: dict[int, list[dict]] = {k: [] for k in sizes}
    for fold in folds:
        held = [posts[i] for i in by_key[(fold, seeds[0])]["ids"]]
        y = np.array([LABELS.index(p.label) for p in held])
        ckpts = [read_checkpoint(Path(a.runs) / f"{runs[0]['model']}-s{s}-f{fold}.pt") for s in seeds]
        for k in sizes:
            model = build_member(average_weights(ckpts[:k], [f"s{s}" for s in seeds[:k]]))
            probs = predict_probs(model, MvsaFeatures(model, a.data_dir, None, progress=False)(held))
            soups[k].append({"fold": fold, "y": y, "probs": probs, "ids": [p.id for p in held],
                             **metric_row(compute_metrics(y, probs.argmax(1), LABELS))})
            log.info("fold %d, soup of %d: acc %.2f", fold, k, soups[k][-1]["accuracy"])

    def single_mean(fold: int, k: int) -> float:
        return float(np.mean([by_key[(fold, s)]["accuracy"] for s in seeds[:k]]))

    lines = [f"Command: `python scripts/probe_soup.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
             f"({len(folds)} folds × seeds {seeds} of `{Path(a.runs).name}`, {time.time() - t0:.0f} s).", "",
             "| model (per fold) | compute per post | CV accuracy | Δ accuracy vs one run, paired by fold "
             "| folds higher | CV weighted F1 | CV macro F1 | CV neutral recall |", "|---|---|---|---|---|---|---|---|",
             f"| one run (every seed; mean ± sd over {len(runs)} runs) | 1 | "
             + mean_sd([r["accuracy"] for r in runs]) + " | — | | "
             + " | ".join(mean_sd([r[m] for r in runs]) for m in METRICS[1:]) + " |"]
    for k in sizes:
        rows = soups[k]
        diffs = [r["accuracy"] - single_mean(r["fold"], k) for r in rows]
        lines.append(f"| mean of the weights of seeds {seeds[:k]} (soup) | 1 | " + mean_sd([r["accuracy"] for r in rows])
                     + f" | {mean_sd(diffs)} | {sum(d > 0 for d in diffs)} of {len(diffs)} | "
                     + " | ".join(mean_sd([r[m] for r in rows]) for m in METRICS[1:]) + " |")
    for k in sizes:
        es = ensemble_scores([by_key[(f, s)] for f in folds for s in seeds[:k]])
        diffs = [e["accuracy"] - single_mean(e["fold"], k) for e in es]
        lines.append(f"| mean of the probabilities of seeds {seeds[:k]} (ensemble) | {k} | "
                     + mean_sd([e["accuracy"] for e in es]) + f" | {mean_sd(diffs)} | "
                     f"{sum(d > 0 for d in diffs)} of {len(diffs)} | "
                     + " | ".join(mean_sd([e[m] for e in es]) for m in METRICS[1:]) + " |")
    big = soups[sizes[-1]]
    es = ensemble_scores(runs)
    lines += ["", f"Per fold, the soup of all {len(seeds)} seeds minus the mean of its runs (accuracy): "
              + ", ".join(f"fold {r['fold']} {r['accuracy'] - single_mean(r['fold'], len(seeds)):+.2f}" for r in big)
              + "."]
    lines += ["", f"The soup of all {len(seeds)} seeds against their ensemble, paired by fold: accuracy "
              + mean_sd([s["accuracy"] - e["accuracy"] for s, e in zip(big, es)])
              + f" (higher on {sum(s['accuracy'] > e['accuracy'] for s, e in zip(big, es))} of {len(es)} folds)."]
    emit_block("\n".join(lines), a.out, a.block)
    if a.save_dir:
        out = Path(a.save_dir)
        out.mkdir(parents=True, exist_ok=True)
        first = runs[0]
        init = TrainConfig.from_saved(first["train_config"]).model_seed
        for r in big:
            rec = {k: v for k, v in first.items() if k not in ("probs", "y", "ids", "history", "fold", "seed")}
            rec.update({"seed": init, "fold": r["fold"], "soup_of_seeds": seeds, "ids": r["ids"],
                        "y": r["y"].tolist(), "probs": np.round(r["probs"], 6).tolist(), "n": len(r["ids"]),
                        "seconds": float(sum(by_key[(r["fold"], s)]["seconds"] for s in seeds)),
                        **{m: r[m] for m in METRICS}})
            (out / f"{first['model']}-s{init}-f{r['fold']}.json").write_text(json.dumps(rec))
        print(f"wrote {len(big)} held-out records of the soup of seeds {seeds} to {out}")


if __name__ == "__main__":
    main()
