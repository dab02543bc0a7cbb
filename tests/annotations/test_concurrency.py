"""Concurrent writers on one SQLite file: no lost or duplicated correction, and a killed writer
loses at most its one in-flight correction."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

import annotations as A
from annotations.models import Annotation

from tests.annotations import workers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

N = 50


def test_threads_and_processes_write_every_row_once(sessions, db_url, data_dir):
    with sessions.begin() as s:
        posts = [A.add_post(s, f"p{i}", data_dir=data_dir) for i in range(5)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool, ThreadPoolExecutor(4) as threads:
        procs = [pool.apply_async(workers.write_corrections, (db_url, f"proc{i}", posts, N, None, "team"))
                 for i in range(2)]
        futures = [threads.submit(workers.write_corrections, sessions, f"thread{i}", posts, N, None, "team")
                   for i in range(4)]
        done = [f.result(timeout=120) for f in futures] + [p.get(timeout=120) for p in procs]
    assert done == [N] * 6
    with sessions() as s:
        notes = s.scalars(select(Annotation.note)).all()
        assert len(notes) == 6 * N and len(set(notes)) == 6 * N  # none lost, none duplicated
        assert len(A.list_annotators(s)) == 7  # 6 writers + the shared name, created once
        assert s.scalar(select(func.count()).select_from(Annotation).where(Annotation.kind == "label")) == 6 * N
        assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_killed_writer_loses_at_most_the_in_flight_row(sessions, db_url, data_dir, tmp_path):
    with sessions.begin() as s:
        for i in range(3):
            A.add_post(s, f"p{i}", data_dir=data_dir)
    ack = tmp_path / "acks.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "workers.py"), db_url, "victim", "100000", str(ack)],
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and (
            not ack.exists() or len(ack.read_text().split()) < 20):
        time.sleep(0.05)
    assert proc.poll() is None, "the writer died on its own"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acked = len(ack.read_text().split())
    assert acked >= 20
    with sessions() as s:
        rows = s.scalar(select(func.count()).select_from(Annotation))
        assert rows in (acked, acked + 1)  # +1: committed, killed before it could acknowledge
        assert s.connection().exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
