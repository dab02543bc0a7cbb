"""One person's /predict while three others flood /explain with the slowest CAM method, before and after the limits.

    python bench/bench_security.py [--duration 75] [--out docs/bench_security.md]

Each phase starts ``python app.py`` afresh (shipped default model, a fresh data folder in accounts mode, so
everyone signs in as an annotator, as on a public deployment) and runs for ``--duration`` seconds:

- ``limits off``: ``MMSA_LIMITS=off`` (no rate limits, ScoreCAM for everyone, predictions and explanations in
  one model queue: the app as it was); three clients call ``/explain`` with ScoreCAM back to back.
- ``limits on``: the same three clients, the same calls (refused: ScoreCAM is for admins).
- ``limits on, GradCAM flood``: the three switch to GradCAM (allowed, 20 a minute each, the rest refused).

Meanwhile one more client calls ``/predict`` every ``--every`` seconds (a person clicking; under their own
60-a-minute limit) and its latency is what the table reports, with what the flooders got done.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.bench_app import start_app  # noqa: E402
from bench.common import emit, machine, percentiles  # noqa: E402

ATTRIBUTION = "attribution (integrated gradients)"
PASSWORD = "bench password 123"
PHASES = (("limits off, ScoreCAM flood", "off", "ScoreCAM"), ("limits on, ScoreCAM flood", "on", "ScoreCAM"),
          ("limits on, GradCAM flood", "on", "GradCAM"))


def make_accounts(data_dir: Path, names: list[str]) -> None:
    from annotations import create_engine_from_url, create_sessionmaker, default_db_url, init_db
    from annotations.accounts import add_account

    engine = create_engine_from_url(default_db_url(data_dir))
    init_db(engine)
    with create_sessionmaker(engine).begin() as s:
        for name in names:
            add_account(s, name, "annotator", PASSWORD)
    engine.dispose()


def run_phase(limits: str, method: str, duration: float, every: float, example: tuple[str, str]) -> dict:
    from gradio_client import Client, handle_file

    data_dir = Path(tempfile.mkdtemp(prefix="mmsa-bench-security-"))
    make_accounts(data_dir, ["user", "flood1", "flood2", "flood3"])
    os.environ["MMSA_LIMITS"] = limits  # read by the app's settings
    proc, url = start_app(data_dir, checkpoint=None)
    image, text = example
    try:
        user = Client(url, auth=("user", PASSWORD), verbose=False)
        user.predict(handle_file(image), text, "", api_name="/predict")  # loads the model
        stop = time.monotonic() + duration
        flood = {"done": 0, "refused": 0, "messages": set()}
        lock = threading.Lock()

        def flooder(k: int) -> None:
            client = Client(url, auth=(f"flood{k}", PASSWORD), verbose=False)
            while time.monotonic() < stop:
                try:
                    client.predict(handle_file(image), text, "", method, 0.5, ATTRIBUTION, False, api_name="/explain")
                    outcome = "done"
                except Exception as e:  # refused (role, rate limit, full queue)
                    outcome = "refused"
                    with lock:
                        flood["messages"].add(str(e).split(";")[0][:80])
                    time.sleep(0.2)  # an attacker's retry loop, not a CPU spin on the client side
                with lock:
                    flood[outcome] += 1

        threads = [threading.Thread(target=flooder, args=(k,), daemon=True) for k in (1, 2, 3)]
        for t in threads:
            t.start()
        time.sleep(2.0)  # the flood is under way
        latencies, errors = [], 0
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                user.predict(handle_file(image), text, "", api_name="/predict")
                latencies.append(1000 * (time.perf_counter() - start))
            except Exception:
                errors += 1
            time.sleep(max(0.0, every - (time.perf_counter() - start)))
        return {"latencies": latencies, "errors": errors, **flood}
    finally:
        proc.terminate()  # in-flight explanations die with the server; the next phase starts clean
        proc.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=75.0, help="seconds per phase")
    ap.add_argument("--every", type=float, default=1.5, help="seconds between the user's predictions")
    ap.add_argument("--out", default=None, help="write the Markdown table here too")
    args = ap.parse_args(argv)
    from webapp.examples import load_examples

    ex = load_examples()[0]
    rows = []
    for name, limits, method in PHASES:
        r = run_phase(limits, method, args.duration, args.every, (ex.image, ex.text))
        p = percentiles(r["latencies"]) if r["latencies"] else {"n": 0, "p50": float("nan"), "p95": float("nan")}
        rows.append(f"| {name} | {p['n']} | {p['p50']:.0f} | {p['p95']:.0f} | {r['errors']} | {r['done']} | "
                    f"{r['refused']} |")
        print(rows[-1], "; flooders were told:", sorted(r["messages"])[:3], flush=True)
    cmd = "python bench/bench_security.py " + " ".join(argv if argv is not None else sys.argv[1:])
    emit("\n".join([
        f"`{cmd.strip()}` · {machine()} · {time.strftime('%Y-%m-%d')} · {args.duration:.0f} s per phase, "
        f"one /predict every {args.every} s",
        "",
        "| phase | user's /predict calls | p50 ms | p95 ms | user errors | flooders' /explain done | refused |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]), args.out)


if __name__ == "__main__":
    main()
