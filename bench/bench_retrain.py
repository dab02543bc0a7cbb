"""Retraining from corrections, timed: MVSA-Single train + N corrections, the shipped default's recipe.

    python bench/bench_retrain.py [--checkpoint PATH] [--n-corrections 500] [--out docs/bench_retrain.md]

A fresh data folder gets N MVSA-Single *train* posts (a fixed random sample) and one annotator's
correction for each; by default the annotator gives MVSA's own label to 80% of them and another label to
the rest (seeded), so the training data really changes. Then ``run_retrain`` does what *Retrain now* does:
export -> train every member of the default's recipe -> compare on val -> register. The feature cache
(``data/cache``) is used as training uses it; the first run on a machine also builds it (about 4 minutes),
so run the benchmark twice or after a training run to time the retrain alone.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.common import emit, machine  # noqa: E402


def seed_corrections(data_dir: Path, mvsa_dir: Path, n: int, agree: float, seed: int) -> str:
    from sqlalchemy import select

    from annotations import (LABELS, create_engine_from_url, create_sessionmaker, default_db_url, import_posts,
                             init_db, read_posts_csv, save_correction)
    from annotations.models import Post

    url = default_db_url(data_dir)
    engine = create_engine_from_url(url)
    init_db(engine)
    sessions = create_sessionmaker(engine)
    rng = random.Random(seed)
    rows = rng.sample([r for r in read_posts_csv(mvsa_dir / "posts.csv") if r["split"] == "train"], n)
    import_posts(sessions, rows, data_dir, mvsa_dir / "images", splits=None, progress=False)
    gold = {f"mvsa-single:{r['id']}": r["label"] for r in rows}
    with sessions.begin() as s:
        ids = {p.source: p.id for p in s.scalars(select(Post))}
    for source, label in gold.items():
        given = label if rng.random() < agree else rng.choice([x for x in LABELS if x != label])
        with sessions.begin() as s:  # one short session per action, as the app does
            save_correction(s, ids[source], "bench", given)
    engine.dispose()
    return url


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model to retrain (default: the shipped default)")
    ap.add_argument("--mvsa-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--n-corrections", type=int, default=500)
    ap.add_argument("--agree", type=float, default=0.8, help="share of corrections that keep MVSA's label")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from mmsa_core.checkpoint import DEFAULT_CHECKPOINT
    from mmsa_core.retrain import run_retrain

    checkpoint = a.checkpoint or str(DEFAULT_CHECKPOINT)
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        data_dir = Path(tmp) / "data"
        t0 = time.perf_counter()
        url = seed_corrections(data_dir, Path(a.mvsa_dir), a.n_corrections, a.agree, a.seed)
        seed_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = run_retrain(url, data_dir, checkpoint, a.mvsa_dir)
        wall = time.perf_counter() - t0
    o, n = r["old"]["val"], r["new"]["val"]
    cmd = "python bench/bench_retrain.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"### Retrain benchmark: `{Path(checkpoint).name}` ({r['n_members']} member(s))", "",
          f"`{cmd}` on {machine()}, {os.cpu_count()} CPUs; load average at the end "
          f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M')}.", "",
          f"{r['n_corrections']} corrections of MVSA train posts ({a.agree:.0%} keep MVSA's label), "
          f"seeded into a fresh SQLite store in {seed_s:.1f} s.", "",
          "| step | seconds |", "|---|---:|",
          f"| export + train every member (`train_seconds`) | {r['train_seconds']:.1f} |",
          f"| whole retrain (export, train, compare on val, register) | {wall:.1f} |", "",
          "| val | accuracy | weighted F1 | macro F1 | neutral recall |", "|---|---:|---:|---:|---:|",
          *(f"| {when} | {m['accuracy']:.2f} | {m['weighted_f1']:.2f} | {m['macro_f1']:.2f} | "
            f"{m['neutral_recall']:.3f} |" for when, m in (("before", o), ("after", n))),
          "", f"Corrected posts: {r['correction_impact']}; promoted: {r['promoted']}."]
    emit("\n".join(md), a.out)


if __name__ == "__main__":
    main()
