"""Latency of ``Predictor.predict`` for one post (p50/p95 after warm-up) and batch throughput.

    python bench/bench_predict.py [CHECKPOINT] [--n 60] [--out docs/bench_predict.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, percentiles  # noqa: E402
from mmsa_core.data import load_mvsa  # noqa: E402
from mmsa_core.predictor import Predictor  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    pred = Predictor.from_checkpoint(a.checkpoint, device="cpu")
    load_s = time.perf_counter() - t0
    posts = [p for p in load_mvsa(a.data_dir) if p.split == "val"][: a.n]
    for p in posts[:5]:  # warm-up
        pred.predict(p.image, p.text)
    single = []
    for p in posts:
        t = time.perf_counter()
        pred.predict(p.image, p.text)
        single.append(1000 * (time.perf_counter() - t))
    t = time.perf_counter()
    pred.predict_batch([p.image for p in posts], [p.text for p in posts], batch_size=16)
    batch_ms = 1000 * (time.perf_counter() - t) / len(posts)
    s = percentiles(single)
    md = (f"Command: `python bench/bench_predict.py --n {a.n}` on {machine()}; model `{pred.name}`.\n\n"
          "| measure | value |\n|---|---|\n"
          f"| load checkpoint (s) | {load_s:.2f} |\n"
          f"| predict one post p50 (ms) | {s['p50']:.1f} |\n| predict one post p95 (ms) | {s['p95']:.1f} |\n"
          f"| predict_batch, batch 16 (ms per post) | {batch_ms:.1f} |\n| posts timed | {s['n']} |")
    emit(md, a.out)


if __name__ == "__main__":
    main()
