"""How long each heatmap method takes on one post (the app's method selector quotes these numbers).

    python bench/bench_cam_methods.py [CHECKPOINT] [--n 3] [--out docs/bench_cam_methods.md]

One explanation per method and post as the app's Analyze tab runs it first (heatmap + integrated gradients,
no faithfulness pass), on the CPU, after one warm-up call; the example posts of ``assets/``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, percentiles  # noqa: E402
from mmsa_core.explain import list_cam_methods  # noqa: E402
from mmsa_core.predictor import Predictor  # noqa: E402
from webapp.examples import load_examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--n", type=int, default=3, help="posts per method (ScoreCAM: at most 2)")
    ap.add_argument("--out")
    a = ap.parse_args()
    pred = Predictor.from_checkpoint(a.checkpoint, device="cpu")
    posts = load_examples()[: a.n]
    pred.explain(posts[0].image, posts[0].text, method="GradCAM", faithfulness=False)  # warm-up
    rows = []
    for method in list_cam_methods():
        ms = []
        for ex in posts[: 2 if method == "ScoreCAM" else a.n]:
            t = time.perf_counter()
            pred.explain(ex.image, ex.text, method=method, faithfulness=False)
            ms.append(1000 * (time.perf_counter() - t))
        s = percentiles(ms)
        rows.append(f"| {method} | {s['n']} | {s['p50'] / 1000:.2f} | {max(ms) / 1000:.2f} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    md = (f"Command: `python bench/bench_cam_methods.py --n {a.n}` on {machine()}; model `{pred.name}`; "
          f"load average {load:.1f} at the end (the machine is shared).\n\n"
          "| method | posts | p50 s | max s |\n|---|---:|---:|---:|\n" + "\n".join(rows))
    emit(md, a.out)


if __name__ == "__main__":
    main()
