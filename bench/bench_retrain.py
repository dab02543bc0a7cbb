"""Retraining from the database, timed as the app runs it: in its own process, cache cold then warm.

    python bench/bench_retrain.py [--checkpoint PATH] [--n-corrections 500] [--full] [--out docs/bench_retrain.md]

A fresh data folder gets N MVSA-Single *train* posts (a fixed random sample) and one annotator's label
for each; the annotator gives MVSA's own label to 80% of them and another label to the rest (seeded), so
the training data really changes. Then ``python -m mmsa_core.retrain --base mvsa-single`` runs three
times against the same base checkpoint, each in a fresh process (``os.wait4`` gives each one its own peak
RSS): with an empty feature cache (a fresh install), with the cache it left (the usual case), and with
``--full`` (every member's recipe from scratch, fine-tuning included) to show what the warm start costs
in val / audit quality against a full retrain.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.common import emit, machine, run_child  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def seed_labels(data_dir: Path, mvsa_dir: Path, n: int, agree: float, seed: int) -> str:
    from annotations import LABELS, create_engine_from_url, create_sessionmaker, default_db_url, import_posts, init_db
    from annotations import read_posts_csv

    url = default_db_url(data_dir)
    engine = create_engine_from_url(url)
    init_db(engine)
    rng = random.Random(seed)
    rows = rng.sample([r for r in read_posts_csv(mvsa_dir / "posts.csv") if r["split"] == "train"], n)
    for r in rows:
        if rng.random() >= agree:
            r["label"] = rng.choice([x for x in LABELS if x != r["label"]])
    import_posts(create_sessionmaker(engine), rows, data_dir, mvsa_dir / "images", splits=None, progress=False,
                 labels_as="bench")
    engine.dispose()
    return url


def run_once(url: str, data_dir: Path, cache: Path, checkpoint: str, mvsa_dir: str, full: bool) -> dict:
    """One retrain in a child process; returns its report plus wall seconds and the child's peak RSS."""
    out = data_dir / f"report-{time.time_ns()}.json"
    cmd = [sys.executable, "-m", "mmsa_core.retrain", "--db", url, "--data-dir", str(data_dir), "--base",
           "mvsa-single", "--mvsa-dir", mvsa_dir, "--checkpoint", checkpoint, "--json", str(out)]
    env = {**os.environ, "MMSA_CACHE_DIR": str(cache), "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    _, peak_gb = run_child(cmd + (["--full"] if full else []), cwd=REPO, env=env)
    wall = time.perf_counter() - t0
    report = json.loads(out.read_text())
    return {**report, "wall": wall, "peak_rss_gb": peak_gb}


def _wf1(r: dict, k: str) -> str:
    o, n = r["old"].get(k), r["new"].get(k)
    return "—" if not o else f"{o['weighted_f1']:.2f} → {n['weighted_f1']:.2f}"


def _acc(r: dict, k: str) -> str:
    o, n = r["old"].get(k), r["new"].get(k)
    return "—" if not o else f"{o['accuracy']:.2f} → {n['accuracy']:.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="model to retrain (default: the shipped default)")
    ap.add_argument("--mvsa-dir", default=str(REPO.parent / "shared" / "data" / "mvsa-single"))
    ap.add_argument("--n-corrections", type=int, default=500)
    ap.add_argument("--agree", type=float, default=0.8, help="share of labels that keep MVSA's label")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="also time a full retrain (slow: fine-tunes every member)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    from mmsa_core.checkpoint import DEFAULT_CHECKPOINT

    checkpoint = str(Path(a.checkpoint or DEFAULT_CHECKPOINT).resolve())
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        data_dir, cache = Path(tmp) / "data", Path(tmp) / "cache"
        t0 = time.perf_counter()
        url = seed_labels(data_dir, Path(a.mvsa_dir), a.n_corrections, a.agree, a.seed)
        seed_s = time.perf_counter() - t0
        runs.append(("warm start, cache cold (fresh install)", run_once(url, data_dir, cache, checkpoint, a.mvsa_dir,
                                                                          False)))
        runs.append(("warm start, cache warm", run_once(url, data_dir, cache, checkpoint, a.mvsa_dir, False)))
        if a.full:
            runs.append(("full retrain (every member's recipe), cache warm",
                         run_once(url, data_dir, cache, checkpoint, a.mvsa_dir, True)))
    r0 = runs[0][1]
    cmd = "python bench/bench_retrain.py " + " ".join(sys.argv[1:] if argv is None else argv)
    md = [f"### Retrain benchmark: `{Path(checkpoint).name}` ({r0['n_members']} member(s))", "",
          f"`{cmd}` on {machine()}, {os.cpu_count()} CPUs; load average at the end {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}.", "",
          f"{a.n_corrections} labels of MVSA train posts ({a.agree:.0%} keep MVSA's label) imported into a fresh "
          f"SQLite store in {seed_s:.1f} s: {r0['data']}.", "",
          "| run | wall s | features s | training s | peak RSS (GB) | audit wF1 old → new | val wF1 old → new "
          "| val accuracy old → new | promoted |", "|---|---:|---:|---:|---:|---|---|---|---|"]
    for what, r in runs:
        md.append(f"| {what} | {r['wall']:.0f} | {r['feature_seconds']:.0f} | {r['train_seconds']:.0f} | "
                  f"{r['peak_rss_gb']:.2f} | "
                  f"{_wf1(r, 'audit')} | {_wf1(r, 'val')} | {_acc(r, 'val')} | {r['promoted']} ({r['reason']}) |")
    md += ["", "Peak RSS is each retrain process's own `ru_maxrss` (`os.wait4`). Features s: encoding the posts "
           "(or reading them from the cache) and scoring the old model. Labels the new model learned (corrected "
           "posts in training): "
           f"{runs[-1][1]['correction_impact']}; audit posts: {runs[-1][1]['audit_impact']}."]
    emit("\n".join(md), a.out)


if __name__ == "__main__":
    main()
