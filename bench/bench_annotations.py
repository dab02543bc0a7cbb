"""Benchmark of the annotation store on SQLite.

(a) concurrent writers: threads + processes x N corrections each on one SQLite file -> rows,
    duplicates, integrity_check, throughput (median over runs);
(b) SIGKILL: a writer process killed mid-loop -> integrity_check, rows vs acknowledged writes;
(c) next_in_queue latency per strategy with a large database (default 100,000 posts).

    python bench/bench_annotations.py                          # full scale, prints a Markdown report
    python bench/bench_annotations.py --out docs/annotations_bench.md
    python bench/bench_annotations.py --per-writer 50 --posts 5000 --runs 1 --kills 2   # quick
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: make `annotations` importable
    sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

import annotations as A  # noqa: E402
from annotations.models import Annotation, Annotator, Post, Prediction, utcnow  # noqa: E402

STRATEGY_NOTES = {
    "least_confident": "bench annotator already labelled the 1,000 least confident posts",
    "disagreement": "disputed posts among the other annotators' labels",
    "conflict": "bench annotator already labelled the 500 highest-conflict posts",
    "unseen": "",
    "random": "",
}


# ---- (a) concurrent writers --------------------------------------------------------------------

def _writer(target: Any, name: str, post_ids: list[int], n: int, start: Any, ack_path: Optional[str] = None) -> None:
    """n corrections, one short transaction each; `note` makes every row identifiable.
    `target`: a URL (processes: own engine) or a sessionmaker shared by the threads, as in the app."""
    engine = A.create_engine_from_url(target) if isinstance(target, str) else None
    sessions = A.create_sessionmaker(engine) if engine is not None else target
    ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) if ack_path else None
    start.wait()
    for i in range(n):
        with sessions.begin() as s:
            A.save_correction(s, post_ids[i % len(post_ids)], name, A.LABELS[i % 3], note=f"{name}#{i}")
        if ack is not None:
            os.write(ack, b"1\n")  # unbuffered: survives SIGKILL
    if engine is not None:
        engine.dispose()


def _fresh_db(workdir: Path, tag: str, n_posts: int = 20) -> tuple[str, list[int]]:
    url = f"sqlite:///{workdir / f'{tag}.sqlite'}"
    engine = A.create_engine_from_url(url)
    A.init_db(engine)
    with A.create_sessionmaker(engine).begin() as s:
        posts = [A.add_post(s, f"post {i}", data_dir=workdir) for i in range(n_posts)]
    engine.dispose()
    return url, posts


def _count_rows(url: str) -> dict[str, Any]:
    engine = A.create_engine_from_url(url)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(Annotation))
        distinct = conn.scalar(select(func.count(func.distinct(Annotation.note))))
        integrity = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
    engine.dispose()
    return {"rows": rows, "duplicates": rows - distinct, "integrity": integrity}


def bench_writers(workdir: Path, threads: int, procs: int, per_writer: int, runs: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    results = []
    for run in range(runs):
        url, posts = _fresh_db(workdir, f"writers{run}")
        start = ctx.Event()
        shared = A.create_engine_from_url(url)
        workers = [ctx.Process(target=_writer, args=(url, f"proc{i}", posts, per_writer, start))
                   for i in range(procs)]
        workers += [threading.Thread(target=_writer, args=(A.create_sessionmaker(shared), f"thread{i}", posts,
                                                           per_writer, start)) for i in range(threads)]
        for w in workers:
            w.start()
        time.sleep(3.0)  # let the processes import and connect before the clock starts
        t0 = time.perf_counter()
        start.set()
        for w in workers:
            w.join()
        seconds = time.perf_counter() - t0
        shared.dispose()
        failed = [w.exitcode for w in workers if isinstance(w, multiprocessing.process.BaseProcess) and w.exitcode]
        results.append({**_count_rows(url), "seconds": seconds, "failed": len(failed)})
    writers = threads + procs
    return {
        "writers": f"{threads} threads + {procs} processes", "per_writer": per_writer,
        "expected": writers * per_writer, "runs": results,
        "throughput": statistics.median(writers * per_writer / r["seconds"] for r in results),
    }


# ---- (b) SIGKILL mid-write ---------------------------------------------------------------------

def bench_kill(workdir: Path, kills: int, seed: int = 0) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(seed)
    out = []
    for k in range(kills):
        url, posts = _fresh_db(workdir, f"kill{k}")
        ack = workdir / f"kill{k}.acks"
        start = ctx.Event()
        start.set()
        proc = ctx.Process(target=_writer, args=(url, "victim", posts, 10**9, start, str(ack)))
        proc.start()
        while proc.is_alive() and (not ack.exists() or ack.stat().st_size == 0):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.2, 1.0))  # kill at a random point of the write loop
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        acked = len(ack.read_bytes().split())
        got = _count_rows(url)
        out.append({"acked": acked, **got, "lost": acked - got["rows"], "unacked": got["rows"] - acked})
    return out


# ---- (c) queue latency -------------------------------------------------------------------------

def _seed_queue_db(url: str, n_posts: int, seed: int = 0) -> None:
    """n posts, one prediction each, 7% source conflicts, 3 annotators x 3,000 labels, and a
    `bench` annotator who already worked the head of the least_confident and conflict queues."""
    rng = random.Random(seed)
    engine = A.create_engine_from_url(url)
    A.init_db(engine)
    now = utcnow()
    posts, preds = [], []
    for i in range(1, n_posts + 1):
        raw = [rng.random() for _ in A.LABELS]
        probs = [r / sum(raw) for r in raw]
        conflict = 1.0 if rng.random() < 0.07 else None
        posts.append({"id": i, "text": f"post {i}", "source": f"bench:{i}", "created_at": now,
                      "content_sha256": A.content_sha256(None, f"post {i}"),
                      "latest_prediction_id": i, "confidence": max(probs), "conflict": conflict})
        preds.append({"id": i, "post_id": i, "model_name": "bench", "label": A.LABELS[probs.index(max(probs))],
                      "p_negative": probs[0], "p_neutral": probs[1], "p_positive": probs[2], "created_at": now})
    with engine.begin() as conn:
        conn.execute(insert(Post), posts)
        conn.execute(insert(Prediction), preds)
        conn.execute(insert(Annotator), [{"id": i, "name": n, "created_at": now}
                                         for i, n in enumerate(["a1", "a2", "a3", "bench"], 1)])
        labels = []
        for aid in (1, 2, 3):
            for pid in rng.sample(range(1, n_posts + 1), min(3000, n_posts)):
                model = preds[pid - 1]["label"]
                label = model if rng.random() < 0.8 else rng.choice([x for x in A.LABELS if x != model])
                labels.append({"post_id": pid, "annotator_id": aid, "label": label})
        by_conf = sorted(posts, key=lambda p: (p["confidence"], p["id"]))[:min(1000, n_posts // 4)]
        conflicted = [p for p in posts if p["conflict"]]
        by_conflict = conflicted[-min(500, len(conflicted) // 2):]
        labels += [{"post_id": p["id"], "annotator_id": 4, "label": "neutral"} for p in by_conf + by_conflict]
        for i, row in enumerate(labels, 1):
            row.update(id=i, kind="label", created_at=now)
        conn.execute(insert(Annotation), labels)
        # What the store's writes would have kept in posts.disputed.
        on_post: dict[int, list[dict[str, Any]]] = {}
        for row in labels:
            on_post.setdefault(row["post_id"], []).append(row)
        disputed = [{"pid": pid, "d": max(r["id"] for r in rows)} for pid, rows in on_post.items()
                    if len({r["label"] for r in rows} | {preds[pid - 1]["label"]}) > 1]
        conn.execute(sqlalchemy.text("UPDATE posts SET disputed = :d WHERE id = :pid"), disputed)
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def bench_queue(workdir: Path, n_posts: int, queries: int) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'queue.sqlite'}"
    t0 = time.perf_counter()
    _seed_queue_db(url, n_posts)
    seed_s = time.perf_counter() - t0
    engine = A.create_engine_from_url(url)
    sessions = A.create_sessionmaker(engine)
    rows: dict[str, Any] = {}
    for strategy in A.STRATEGIES:
        times = []
        for _ in range(queries):  # one short session per call, as in the app
            t = time.perf_counter()
            with sessions() as s:
                item = A.next_in_queue(s, "bench", strategy, data_dir=workdir)
            times.append((time.perf_counter() - t) * 1000)
            assert item is not None, strategy
        times.sort()
        rows[strategy] = {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))],
                          "max": times[-1]}
    with sessions() as s:
        n_ann = s.scalar(select(func.count()).select_from(Annotation))
    engine.dispose()
    return {"posts": n_posts, "annotations": n_ann, "queries": queries, "seed_s": seed_s, "strategies": rows}


# ---- report ------------------------------------------------------------------------------------

def report(args: argparse.Namespace, writers: dict[str, Any], kills: list[dict[str, Any]],
           queue: dict[str, Any]) -> str:
    lines = [
        f"Command: `{' '.join(['python bench/bench_annotations.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other work), Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}; "
        "WAL, synchronous=FULL (SQLite's default), BEGIN IMMEDIATE.",
        "",
        f"**(a) Concurrent writers** — {writers['writers']} x {writers['per_writer']} corrections, one "
        "transaction each, on one SQLite file",
        "",
        "| run | rows (expected) | duplicates | integrity_check | seconds | corrections/s |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(writers["runs"], 1):
        lines.append(f"| {i} | {r['rows']} ({writers['expected']}) | {r['duplicates']} | {r['integrity']} | "
                     f"{r['seconds']:.2f} | {writers['expected'] / r['seconds']:.0f} |")
    lines += ["", f"Median throughput: **{writers['throughput']:.0f} corrections/s**.", "",
              "**(b) Writer killed with SIGKILL mid-loop** (random moment)", "",
              "| kill | acknowledged | rows | lost acknowledged | committed, not yet acknowledged | integrity_check |",
              "|---|---|---|---|---|---|"]
    for i, k in enumerate(kills, 1):
        lines.append(f"| {i} | {k['acked']} | {k['rows']} | {max(k['lost'], 0)} | {max(k['unacked'], 0)} | "
                     f"{k['integrity']} |")
    lines += ["", f"**(c) next_in_queue latency** — {queue['posts']:,} posts with one prediction each, "
              f"{queue['annotations']:,} annotation rows; {queue['queries']} calls per strategy, each in "
              f"its own session (seeding took {queue['seed_s']:.0f} s)", "",
              "| strategy | p50 ms | p95 ms | max ms | setup |", "|---|---|---|---|---|"]
    for name, r in queue["strategies"].items():
        lines.append(f"| {name} | {r['p50']:.2f} | {r['p95']:.2f} | {r['max']:.2f} | {STRATEGY_NOTES[name]} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4, help="writer threads (one shared engine)")
    parser.add_argument("--procs", type=int, default=4, help="writer processes (spawned)")
    parser.add_argument("--per-writer", type=int, default=500, help="corrections per writer")
    parser.add_argument("--runs", type=int, default=3, help="writer runs; throughput is their median")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILL trials")
    parser.add_argument("--posts", type=int, default=100_000, help="posts in the queue database")
    parser.add_argument("--queries", type=int, default=100, help="next_in_queue calls per strategy")
    parser.add_argument("--workdir", default=None, help="where the databases go (default: a temp dir)")
    parser.add_argument("--out", default=None, help="also write the Markdown report to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_annotations_", dir=args.workdir) as tmp:
        workdir = Path(tmp)
        writers = bench_writers(workdir, args.threads, args.procs, args.per_writer, args.runs)
        kills = bench_kill(workdir, args.kills)
        queue = bench_queue(workdir, args.posts, args.queries)
    text = report(args, writers, kills, queue)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
