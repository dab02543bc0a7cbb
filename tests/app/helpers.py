"""Shared by the app tests: what the database and the data folder hold, to show that a refused call wrote nothing."""
from __future__ import annotations

from sqlalchemy import func, select


def db_snapshot(ctx) -> dict:
    """{table: row count} of every table, plus every file under the data folder but the database's own; taken
    once the app's background work (the next post prepared ahead, with its prediction) is done."""
    from annotations.models import Base

    ctx.background.wait_idle()
    with ctx.sessions() as s:
        counts = {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    files = sorted(str(p.relative_to(ctx.settings.data_dir)) for p in ctx.settings.data_dir.rglob("*")
                   if p.is_file() and not p.name.startswith("annotations.sqlite"))
    return {"rows": counts, "files": files}


FAKE_WORKER = """
import sys, time
from annotations import create_engine_from_url, create_sessionmaker
from annotations.jobs import JobCancelled, JobReporter
sessions = create_sessionmaker(create_engine_from_url(sys.argv[2]))
reporter = JobReporter(sessions, int(sys.argv[1]), heartbeat_s=0.5)
try:
    for i in range(1, 1201):
        reporter(i / 1200, f"fake training step {i}")
        time.sleep(0.05)
except JobCancelled:
    reporter.finish("cancelled")
else:
    reporter.finish("done", report={"promoted": False, "model_version": "fake", "reason": "fake"})
"""


def fake_worker_launcher(job_id, db_url, data_dir, mvsa_dir):
    """A separate process that speaks the job protocol like ``python -m mmsa_core.retrain --job`` (claims the
    job, reports progress, stops on Cancel) without training: the app's side of retraining, tested quickly."""
    import subprocess
    import sys

    from tests.conftest import REPO

    return subprocess.Popen([sys.executable, "-c", FAKE_WORKER, str(job_id), db_url], cwd=REPO)


def wait_for(predicate, timeout: float = 60.0, every: float = 0.1):
    """Poll ``predicate()`` until it returns something truthy; that value, or AssertionError at the timeout."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
