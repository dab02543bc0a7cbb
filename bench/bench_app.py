"""The app through its API: analyze round trips and concurrent annotators, against a running server.

    python bench/bench_app.py [--checkpoint PATH] [--n 30] [--duration 120] [--out docs/bench_app.md]

Starts ``python app.py`` in a subprocess on a free port with a fresh data folder (MVSA-Single's val and
unlabeled posts imported as the annotation queue), unless ``--url`` names a running app. Then:

1. Analyze round trip = what the Analyze button does: ``/predict`` then ``/explain`` (label + heatmap +
   word highlights), image uploaded by ``gradio_client``; p50/p95 with 1 client and with 4 at once;
   then the same plus the second pass that adds the faithfulness scores.
2. 4 annotators, each its own client, label posts through ``/label_post`` for ``--duration`` seconds;
   afterwards every save the API acknowledged is looked up in the database.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.common import emit, machine, percentiles  # noqa: E402

ATTRIBUTION = "attribution (integrated gradients)"
LABELS = ("negative", "neutral", "positive")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_queue(data_dir: Path, mvsa_dir: Path) -> int:
    from annotations import create_engine_from_url, create_sessionmaker, default_db_url, import_posts, init_db
    from annotations import read_posts_csv

    engine = create_engine_from_url(default_db_url(data_dir))
    init_db(engine)
    counts = import_posts(create_sessionmaker(engine), read_posts_csv(mvsa_dir / "posts.csv"), data_dir,
                          mvsa_dir / "images", splits=("val", "unlabeled"), progress=False)
    engine.dispose()
    return counts["added"]


def start_app(data_dir: Path, checkpoint: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MMSA_DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1"}
    if checkpoint:
        env["MMSA_CHECKPOINT"] = checkpoint
    log = open(data_dir / "app.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=REPO, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited; see {data_dir / 'app.log'}")
            time.sleep(0.5)
    raise RuntimeError("the app did not start within 2 minutes")


def add_app_arguments(ap: argparse.ArgumentParser, default_model: str) -> None:
    """The options of the benchmarks that drive an app: a running one, or the model for the one they start."""
    ap.add_argument("--url", help="a running app (default: start one with a fresh data folder)")
    ap.add_argument("--checkpoint", help=f"MMSA_CHECKPOINT for the started app (default: {default_model})")
    ap.add_argument("--mvsa-dir", default="../shared/data/mvsa-single")


@contextmanager
def app_with_queue(url: str | None, mvsa_dir: str, checkpoint: str | None, prefix: str):
    """(url, data folder) of the app to measure: ``url`` as given (no data folder), else ``python app.py`` started
    on a fresh data folder with MVSA-Single's val and unlabeled posts as the queue, and stopped at the end."""
    if url:
        yield url, None
        return
    data_dir = Path(tempfile.mkdtemp(prefix=prefix)) / "data"
    data_dir.mkdir(parents=True)
    print(f"imported {import_queue(data_dir, Path(mvsa_dir))} posts into {data_dir}", flush=True)
    proc, url = start_app(data_dir, checkpoint)
    try:
        yield url, data_dir
    finally:
        proc.terminate()
        proc.wait(30)


def analyze_once(client, image: str, text: str, faithfulness: bool) -> float:
    """What the Analyze button does: label, then heatmap + words (+ the faithfulness pass when asked)."""
    from gradio_client import handle_file

    t = time.perf_counter()
    client.predict(handle_file(image), text, "", api_name="/predict")
    client.predict(handle_file(image), text, "", "GradCAM", 0.5, ATTRIBUTION, False, api_name="/explain")
    if faithfulness:  # the UI's second pass recomputes the explanation with its faithfulness scores
        client.predict(handle_file(image), text, "", "GradCAM", 0.5, ATTRIBUTION, True, api_name="/explain")
    return 1000 * (time.perf_counter() - t)


def analyze_round_trips(url: str, posts: list, n: int, clients: int, faithfulness: bool) -> list[float]:
    """``n`` round trips per client, all clients at once; returns every latency in ms."""
    from gradio_client import Client

    out: list[float] = []
    failures: list[Exception] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        try:
            client = Client(url, verbose=False)
            for i in range(n):
                p = posts[(k * n + i) % len(posts)]
                ms = analyze_once(client, p.image, p.text, faithfulness)
                with lock:
                    out.append(ms)
        except Exception as e:
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed") from failures[0]
    return out


def annotators(url: str, n: int, duration: float) -> tuple[list[dict], list[float], list[str]]:
    """``n`` annotators labelling for ``duration`` s -> (acknowledged saves, save latencies ms, errors)."""
    from gradio_client import Client

    saves, latencies, errors = [], [], []
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker(k: int) -> None:
        name, rng = f"bench-annotator-{k}", random.Random(k)
        client = Client(url, verbose=False)
        post = client.predict(name, "unseen", "", api_name="/next_post")[0]
        while post is not None and time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                out = client.predict(name, post, rng.choice(LABELS), f"bench {k}", "unseen", "",
                                     api_name="/label_post")
            except Exception as e:  # counted, not fatal: the point is whether saves get lost
                with lock:
                    errors.append(f"{name}: {e}")
                continue
            with lock:
                saves.append(out[8])
                latencies.append(1000 * (time.perf_counter() - t))
            post = out[0]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return saves, latencies, errors


def verify_saves(data_dir: Path, saves: list[dict]) -> int:
    """How many acknowledged saves are in the database with the same post, annotator and label."""
    from sqlalchemy import select

    from annotations import create_engine_from_url, create_sessionmaker, default_db_url
    from annotations.models import Annotation, Annotator

    engine = create_engine_from_url(default_db_url(data_dir))
    with create_sessionmaker(engine)() as s:
        rows = {r.id: (r.post_id, name, r.label) for r, name in s.execute(
            select(Annotation, Annotator.name).join(Annotator, Annotator.id == Annotation.annotator_id))}
    engine.dispose()
    return sum(rows.get(x["annotation_id"]) == (x["post_id"], x["annotator"], x["label"]) for x in saves)


def row(name: str, ms: list[float]) -> str:
    s = percentiles(ms)
    return f"| {name} | {s['n']} | {s['p50']:.0f} | {s['p95']:.0f} | {s['mean']:.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_app_arguments(ap, "the app's default")
    ap.add_argument("--n", type=int, default=30, help="round trips per client")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of concurrent annotation")
    ap.add_argument("--annotators", type=int, default=4)
    ap.add_argument("--out")
    a = ap.parse_args()
    from mmsa_core.data import load_mvsa

    posts = [p for p in load_mvsa(a.mvsa_dir) if p.split == "val"]
    # All clients come from one address, which the per-person limits would count as one visitor: this benchmark
    # measures latency, so the limits are raised for the app it starts (bench_security.py measures the limits).
    for bucket in ("PREDICT", "EXPLAIN", "CORRECT"):
        os.environ.setdefault(f"MMSA_RATE_{bucket}", "100000/minute")
    with app_with_queue(a.url, a.mvsa_dir, a.checkpoint, "bench-app-") as (url, data_dir):
        from gradio_client import Client

        analyze_round_trips(url, posts[-5:], 1, 1, True)  # warm-up: loads the model
        lines = [f"Analyze round trip (`/predict` + `/explain` through gradio_client), {machine()}:", "",
                 "| setting | n | p50 ms | p95 ms | mean ms |", "|---|---|---|---|---|"]
        for faithfulness in (False, True):
            for clients in (1, 4):
                ms = analyze_round_trips(url, posts, a.n if clients == 1 else max(1, a.n // clients), clients,
                                         faithfulness)
                what = "+ faithfulness pass" if faithfulness else "label + heatmap + words"
                lines.append(row(f"{what}, {clients} client{'s' * (clients > 1)}", ms))
                print(lines[-1], flush=True)
        Client(url, verbose=False)  # the app still answers
        saves, lat, errors = annotators(url, a.annotators, a.duration)
        found = verify_saves(data_dir, saves) if data_dir is not None else None
        s = percentiles(lat or [float("nan")])
        lines += ["", f"{a.annotators} annotators labelling through `/label_post` for {a.duration:.0f} s:", "",
                  "| saves acknowledged | found in the database | errors | save p50 ms | save p95 ms |",
                  "|---|---|---|---|---|",
                  f"| {len(saves)} | {found if found is not None else 'n/a (--url)'} | {len(errors)} | "
                  f"{s['p50']:.0f} | {s['p95']:.0f} |"]
        emit("\n".join(lines), a.out)
        for e in errors[:5]:
            print("error:", e)


if __name__ == "__main__":
    main()
