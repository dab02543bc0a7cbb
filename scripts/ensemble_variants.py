"""Val figures of candidate ensembles built from saved compare runs (the neutral-recall trade-off).

    python scripts/ensemble_variants.py [--out table.md]

Reads the checkpoints that ``python -m mmsa_core.compare ... --save-dir DIR`` kept for three losses on
frozen encoders (``runs/compare`` = ce, ``runs/compare-adaptive``, ``runs/compare-weighted_ce``) and for
``attention_concat`` with the top 2 MiniLM layers fine-tuned (``runs/compare-text2``), averages the
probabilities of each candidate set on val and prints accuracy, weighted F1, macro F1 and neutral recall;
then the effect of adding a constant to the neutral log-probability of the ce ensemble. Val only, so the
row that was picked from this table is flattered by the picking.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmsa_core.data import load_mvsa  # noqa: E402
from mmsa_core.ensemble import load_member, member_probs  # noqa: E402
from mmsa_core.evaluate import compute_metrics  # noqa: E402

FAMILIES = ("attention_concat", "attention_add", "cross_attention")
RUNS = {"ce": "runs/compare", "adaptive": "runs/compare-adaptive", "weighted_ce": "runs/compare-weighted_ce",
        "text2": "runs/compare-text2"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    val = [p for p in load_mvsa(a.data_dir) if p.split == "val"]
    paths = {(loss, fam, seed): Path(folder) / f"{fam}-s{seed}.pt"
             for loss, folder in RUNS.items() for fam in FAMILIES for seed in a.seeds}
    paths = {k: p for k, p in paths.items() if p.exists()}  # text2: attention_concat only
    models = [load_member(p) for p in paths.values()]
    probs = dict(zip(paths, member_probs(models, val, a.data_dir)))
    labels = models[0].labels
    y = np.array([labels.index(p.label) for p in val])

    def row(name: str, logp: np.ndarray, n: int) -> str:
        m = compute_metrics(y, logp.argmax(1), labels)
        return (f"| {name} | {n} | {m['accuracy']:.2f} | {m['weighted_f1']:.2f} | {m['macro_f1']:.2f} | "
                f"{m['per_class']['neutral']['recall']:.3f} |")

    def mean_logp(losses: tuple[str, ...]) -> tuple[np.ndarray, int]:
        keys = [k for k in probs if k[0] in losses]
        return np.log(np.mean([probs[k] for k in keys], 0)), len(keys)

    head = ["| val (450 posts) | heads | accuracy | weighted F1 | macro F1 | neutral recall |",
            "|---|---:|---:|---:|---:|---:|"]
    md = [f"`python scripts/ensemble_variants.py` ({', '.join(FAMILIES)}; seeds {a.seeds}; probabilities "
          "averaged)", ""] + head
    for losses in (("ce",), ("adaptive",), ("weighted_ce",), ("text2",), ("ce", "adaptive"), ("ce", "weighted_ce"),
                   ("ce", "text2")):
        md.append(row(" + ".join(losses), *mean_logp(losses)))
    md += ["", "The ce ensemble with a constant *b* added to log p(neutral):", ""] + head
    logp, n = mean_logp(("ce",))
    for b in (0.0, 0.2, 0.4, 0.7, 1.0):
        shifted = logp.copy()
        shifted[:, labels.index("neutral")] += b
        md.append(row(f"ce, b = {b}", shifted, n))
    text = "\n".join(md)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
