"""Probe: do post-hoc additions to the recipe's probabilities help, judged by nested cross-validation?

    python scripts/probe_blends.py runs/cv/final-teachers --out docs/results.md --block cv-blends

Two additions, both cheap at inference and both made from the fold's own training posts only:

- **TF-IDF**: a logistic regression on word 1-2-gram and character 3-5-gram TF-IDF of the text
  (scikit-learn), trained on the fold's training posts. It makes other errors than MiniLM.
- **kNN memory**: the fold model's fused features (what its classifier reads) of the fold's training posts
  are a memory; a held-out post gets its k nearest neighbours' labels, weighted by exp(cosine / T). In the
  app this would let a correction reach similar posts before any retraining.

Each is blended with the recipe's probabilities as ``(1 - w) * p_model + w * p_other``. The weight (and k
for the memory) is chosen on the other folds' held-out probabilities only, then the fold is scored with it:
the estimate is nested, so no choice sees the posts it is scored on. The rows are paired against the
recipe on the same folds and seeds. Needs the runs' checkpoints (``compare --cv --keep-checkpoints``).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core.checkpoint import load_model  # noqa: E402
from mmsa_core.compare import METRICS, emit_block, load_runs, mean_sd, metric_row  # noqa: E402
from mmsa_core.config import LABELS, TrainConfig  # noqa: E402
from mmsa_core.evaluate import compute_metrics  # noqa: E402
from mmsa_core.features import MvsaFeatures  # noqa: E402
from mmsa_core.folds import assign_folds, cv_posts  # noqa: E402

log = logging.getLogger(__name__)
WEIGHTS = np.round(np.arange(0.0, 1.001, 0.05), 2)
KS = (10, 25, 50)
TEMPERATURE = 0.1


def tfidf_probs(texts: list[str], y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """(N, C) held-out probabilities of a TF-IDF logistic regression, one fit per fold on the other folds."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    out = np.zeros((len(texts), len(LABELS)))
    for f in np.unique(folds):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        clf = make_pipeline(make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                                       TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True,
                                                       min_df=2)),
                            LogisticRegression(C=3, max_iter=2000))
        clf.fit([texts[i] for i in tr], y[tr])
        out[te] = clf.predict_proba([texts[i] for i in te])
    return out


def rule_matrix(labels=LABELS) -> np.ndarray:
    """(C*C, C) MVSA's rule from the (text_label, image_label) pair to the post's label: a neutral side takes
    the other side's label, equal sides keep theirs, positive against negative has no label (a zero row)."""
    neutral = labels.index("neutral")
    m = np.zeros((len(labels) ** 2, len(labels)))
    for t in range(len(labels)):
        for i in range(len(labels)):
            if t == i or i == neutral:
                m[t * len(labels) + i, t] = 1
            elif t == neutral:
                m[t * len(labels) + i, i] = 1
    return m


@torch.no_grad()
def fused_features(model, fs, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, F) L2-normalised fused features (what the model's classifier reads) and, for a model with a joint
    label head, (N, C) its pair probabilities mapped to labels by MVSA's rule (else None)."""
    model.eval()
    out, joint = [], []
    for i in range(0, len(fs), batch_size):
        o = model.forward_from_trunk(*fs.batch(torch.arange(i, min(i + batch_size, len(fs))), "cpu"))
        out.append(torch.nn.functional.normalize(o.features.float(), dim=1))
        if o.joint_logits is not None:
            joint.append(o.joint_logits.softmax(-1).float())
    if not joint:
        return torch.cat(out).numpy(), None
    p = torch.cat(joint).numpy() @ rule_matrix()
    return torch.cat(out).numpy(), p / p.sum(1, keepdims=True)


def knn_probs(feats: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """(len(test), C) similarity-weighted label shares of each test post's k nearest training posts."""
    sim = feats[test] @ feats[train].T  # (T, N_train) cosine similarities
    nn_idx = np.argpartition(-sim, k, axis=1)[:, :k]
    w = np.exp(np.take_along_axis(sim, nn_idx, 1) / TEMPERATURE)
    out = np.zeros((len(test), len(LABELS)))
    for c in range(len(LABELS)):
        out[:, c] = (w * (y[train][nn_idx] == c)).sum(1)
    return out / out.sum(1, keepdims=True)


def nested_blend(y: np.ndarray, folds: np.ndarray, base: np.ndarray, others: dict) -> tuple[list[dict], list]:
    """Per fold: the blend weight (and variant of ``others``) chosen on the other folds by accuracy, scored on the
    fold. ``others``: variant name -> (N, C) probabilities. Returns per-fold metrics and the choices."""
    rows, chosen = [], []
    for f in np.unique(folds):
        inner = folds != f
        best, pick = -1.0, (None, 0.0)
        for name, p in others.items():
            for w in WEIGHTS:
                acc = (((1 - w) * base[inner] + w * p[inner]).argmax(1) == y[inner]).mean()
                if acc > best + 1e-12:
                    best, pick = acc, (name, w)
        name, w = pick
        p = (1 - w) * base[folds == f] + w * others[name][folds == f]
        rows.append({"fold": int(f), **metric_row(compute_metrics(y[folds == f], p.argmax(1), LABELS))})
        chosen.append(pick)
    return rows, chosen


def pairs(posts) -> dict[tuple[str, str], np.ndarray]:
    """(text_label, image_label) -> indices of the posts with that pair."""
    out: dict[tuple[str, str], list[int]] = {}
    for j, p in enumerate(posts):
        out.setdefault((p.text_label, p.image_label), []).append(j)
    return {k: np.array(v) for k, v in out.items()}


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="a folder of compare --cv runs with their checkpoints")
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="only these seeds (default: all saved)")
    ap.add_argument("--data-dir", default=TrainConfig.data_dir)
    ap.add_argument("--out", default=None)
    ap.add_argument("--block", default="cv-blends")
    a = ap.parse_args(argv)
    t0 = time.time()
    runs = [r for rs in load_runs([a.runs]).values() for r in rs if a.seeds is None or r["seed"] in a.seeds]
    posts = cv_posts(a.data_dir)
    folds = assign_folds(posts, runs[0]["k"], runs[0]["fold_seed"])
    index = {p.id: i for i, p in enumerate(posts)}
    y = np.array([LABELS.index(p.label) for p in posts])
    seeds = sorted({r["seed"] for r in runs})
    tfidf = tfidf_probs([p.text for p in posts], y, folds)
    log.info("tf-idf alone: %.2f", (tfidf.argmax(1) == y).mean() * 100)
    table = {"the runs alone (argmax)": [], "+ TF-IDF": [], "+ kNN memory": [], "+ TF-IDF or kNN memory": []}
    choices: dict[str, list] = {k: [] for k in table}
    lookup, predictions = None, {}
    for seed in seeds:
        base, knn = np.zeros((len(posts), len(LABELS))), {k: np.zeros((len(posts), len(LABELS))) for k in KS}
        pair = np.zeros((len(posts), len(LABELS)))
        for r in (r for r in runs if r["seed"] == seed):
            rows = np.array([index[i] for i in r["ids"]])
            base[rows] = np.array(r["probs"])
            model, _ = load_model(Path(a.runs) / f"{r['model']}-s{seed}-f{r['fold']}.pt")
            if lookup is None:  # every fold model of one recipe cuts the encoders alike: one trunk feature set
                lookup = MvsaFeatures(model, a.data_dir, None, progress=False)
            feats, by_rule = fused_features(model, lookup(posts))
            if by_rule is not None:
                pair[rows] = by_rule[rows]
            train = np.flatnonzero(folds != r["fold"])
            for k in KS:
                knn[k][rows] = knn_probs(feats, y, train, rows, k)
            log.info("seed %d fold %d: model %.2f, kNN(25) alone %.2f", seed, r["fold"],
                     (base[rows].argmax(1) == y[rows]).mean() * 100, (knn[25][rows].argmax(1) == y[rows]).mean() * 100)
        plain = [{"fold": int(f), **metric_row(compute_metrics(y[folds == f], base[folds == f].argmax(1), LABELS))}
                 for f in np.unique(folds)]
        table["the runs alone (argmax)"] += plain
        predictions[seed] = base.argmax(1)
        blends = [("+ TF-IDF", {"tfidf": tfidf}), ("+ kNN memory", {f"knn{k}": knn[k] for k in KS}),
                  ("+ TF-IDF or kNN memory", {"tfidf": tfidf, **{f"knn{k}": knn[k] for k in KS}})]
        if pair.any():
            blends.append(("+ the joint head's pair, by MVSA's rule", {"pair": pair}))
            table.setdefault(blends[-1][0], [])
            choices.setdefault(blends[-1][0], [])
        for name, others in blends:
            rows_, chosen = nested_blend(y, folds, base, others)
            table[name] += rows_
            choices[name] += chosen
    alone = "the runs alone (argmax)"
    ref = [r["accuracy"] for r in table[alone]]
    lines = [f"Command: `python scripts/probe_blends.py {a.runs}"
             + (f" --seeds {' '.join(map(str, a.seeds))}" if a.seeds else "")
             + f" --out {a.out} --block {a.block}` ({len(np.unique(folds))} folds × {len(seeds)} seed(s), "
             f"{time.time() - t0:.0f} s on this machine; TF-IDF alone scores "
             f"{(tfidf.argmax(1) == y).mean() * 100:.2f} accuracy held out).", "",
             "| blend (weight chosen on the other folds) | CV accuracy | Δ accuracy, paired | CV weighted F1 | "
             "CV macro F1 | CV neutral recall | chosen per fold (variant, weight) |", "|---|---|---|---|---|---|---|"]
    for name, rows_ in table.items():
        delta = mean_sd(np.array([r["accuracy"] for r in rows_]) - ref) if name != alone else "—"
        picked = ", ".join(f"{v or '-'} {w:.2f}" for v, w in choices[name]) if choices[name] else ""
        lines.append(f"| {name} | " + " | ".join([mean_sd([r["accuracy"] for r in rows_]), delta]
                                                 + [mean_sd([r[m] for r in rows_]) for m in METRICS[1:]])
                     + f" | {picked} |")
    lines += ["", "Where these runs err (argmax, held-out posts of every fold and seed), by MVSA's "
              "per-modality labels:", "",
              "| text_label | image_label | posts | accuracy | predicted negative / neutral / positive |",
              "|---|---|---|---|---|"]
    for (t, i), rows in sorted(pairs(posts).items(), key=lambda kv: -len(kv[1])):
        hits = np.concatenate([predictions[s][rows] == y[rows] for s in seeds])
        counts = np.bincount(np.concatenate([predictions[s][rows] for s in seeds]), minlength=len(LABELS))
        lines.append(f"| {t} | {i} | {len(rows)} | {hits.mean() * 100:.1f} | {' / '.join(map(str, counts))} |")
    emit_block("\n".join(lines), a.out, a.block)


if __name__ == "__main__":
    main()
