"""Background jobs (retraining) whose state lives in the database, so it survives an app restart and
every replica of the app over one database shows the same job.

    with sessions.begin() as s:
        job = start_job(s, "retrain", requested_by="ana", params={...}, cooldown_s=600)  # or JobBusy
    # a worker process: JobReporter(sessions, job["job_id"]) reports progress, heartbeats, sees Cancel

At most one job of a kind is queued or running at any moment: a partial unique index enforces it, so
two replicas clicking at once get one job and one "already running". A job whose worker stopped
reporting (killed, machine restarted) is marked failed after ``STALE_AFTER_S``.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from annotations.errors import AnnotationError
from annotations.models import ACTIVE_JOB_STATES, Job, utcnow

log = logging.getLogger(__name__)

STALE_AFTER_S = 180.0  # a running job that has not reported for this long has lost its worker
HEARTBEAT_S = 10.0  # how often a worker reports even when its progress does not move


class JobBusy(AnnotationError):
    """A job of this kind is already queued or running (or cooling down); the message says which/when."""


class JobCancelled(Exception):
    """Raised inside a worker when someone pressed Cancel."""


def _job_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id, "kind": job.kind, "state": job.state, "requested_by": job.requested_by,
        "params": job.params, "progress": job.progress, "stage": job.stage, "eta_seconds": job.eta_seconds,
        "cancel_requested": job.cancel_requested, "worker": job.worker, "report": job.report, "error": job.error,
        "created_at": job.created_at.isoformat(), "updated_at": job.updated_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def fail_stale_jobs(session: Session, kind: str, stale_after_s: float = STALE_AFTER_S) -> int:
    """Mark queued/running jobs of ``kind`` whose worker stopped reporting as failed; returns how many."""
    cutoff = utcnow() - dt.timedelta(seconds=stale_after_s)
    stale = session.scalars(select(Job).where(Job.kind == kind, Job.state.in_(ACTIVE_JOB_STATES),
                                              Job.updated_at < cutoff)).all()
    for job in stale:
        job.state, job.finished_at = "failed", utcnow()
        job.error = f"the worker stopped reporting (last heard of at {job.updated_at:%Y-%m-%d %H:%M:%S} UTC)"
        log.warning("job #%d (%s) failed: %s", job.id, kind, job.error)
    session.flush()
    return len(stale)


def active_job(session: Session, kind: str) -> Optional[dict[str, Any]]:
    """The queued or running job of ``kind``, if any (stale ones are failed first)."""
    fail_stale_jobs(session, kind)
    job = session.scalar(select(Job).where(Job.kind == kind, Job.state.in_(ACTIVE_JOB_STATES)))
    return _job_dict(job) if job else None


def latest_job(session: Session, kind: str) -> Optional[dict[str, Any]]:
    """The most recent job of ``kind`` (any state), stale ones failed first."""
    fail_stale_jobs(session, kind)
    job = session.scalar(select(Job).where(Job.kind == kind).order_by(Job.id.desc()).limit(1))
    return _job_dict(job) if job else None


def get_job(session: Session, job_id: int) -> dict[str, Any]:
    job = session.get(Job, job_id)
    if job is None:
        raise AnnotationError(f"No job with id {job_id}")
    return _job_dict(job)


def cooldown_left(session: Session, kind: str, cooldown_s: float) -> float:
    """Seconds until a new job of ``kind`` may start (0 when it may start now)."""
    if cooldown_s <= 0:
        return 0.0
    last = session.scalar(select(Job.finished_at).where(Job.kind == kind, Job.finished_at.is_not(None))
                          .order_by(Job.finished_at.desc()).limit(1))
    if last is None:
        return 0.0
    return max(0.0, cooldown_s - (utcnow() - last).total_seconds())


def start_job(session: Session, kind: str, requested_by: Optional[str] = None,
              params: Optional[dict[str, Any]] = None, cooldown_s: float = 0.0) -> dict[str, Any]:
    """Queue a job of ``kind``; JobBusy when one is already queued/running or the cool-down has not passed."""
    running = active_job(session, kind)
    if running is not None:
        raise JobBusy(f"A {kind} job is already {running['state']} (#{running['job_id']}, "
                      f"{100 * running['progress']:.0f}%, {running['stage'] or 'starting'})")
    wait = cooldown_left(session, kind, cooldown_s)
    if wait > 0:
        raise JobBusy(f"The last {kind} finished recently: the next one can start in {wait / 60:.0f} min "
                      f"({wait:.0f} s)")
    try:
        with session.begin_nested():
            job = Job(kind=kind, state="queued", requested_by=requested_by, params=params or {})
            session.add(job)
    except IntegrityError:  # another replica queued one at the same moment (partial unique index)
        raise JobBusy(f"A {kind} job was just started by someone else") from None
    return _job_dict(job)


def request_cancel(session: Session, job_id: int) -> dict[str, Any]:
    """Ask the job's worker to stop; a job that is still queued is cancelled at once."""
    job = session.get(Job, job_id)
    if job is None:
        raise AnnotationError(f"No job with id {job_id}")
    if job.state == "queued":
        job.state, job.finished_at, job.stage = "cancelled", utcnow(), "cancelled before it started"
    elif job.state == "running":
        job.cancel_requested = True
    session.flush()
    return _job_dict(job)


def finish_job(session: Session, job_id: int, state: str, report: Optional[dict[str, Any]] = None,
               error: Optional[str] = None) -> None:
    """Record the end of a job: done (with its report), failed (with the error) or cancelled."""
    if state not in ("done", "failed", "cancelled"):
        raise AnnotationError(f"A job ends as done, failed or cancelled, not {state!r}")
    values = {"state": state, "finished_at": utcnow(), "updated_at": utcnow(), "report": report, "error": error}
    if state == "done":
        values["progress"] = 1.0
    session.execute(update(Job).where(Job.id == job_id).values(**values).execution_options(synchronize_session=False))


class JobReporter:
    """A worker's side of a job: claims it, reports progress (also on a heartbeat thread, so a long step
    without progress still shows the worker is alive), and turns a Cancel request into ``JobCancelled``
    at the worker's next ``check()`` or progress report."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, heartbeat_s: float = HEARTBEAT_S):
        self.sessions, self.job_id = sessions, job_id
        self.started = time.monotonic()
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        with sessions.begin() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued":
                raise AnnotationError(f"Job {job_id} is not waiting for a worker "
                                      f"(state {job.state if job else 'missing'})")
            job.state, job.started_at, job.updated_at = "running", utcnow(), utcnow()
            job.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat_s,), name=f"job-{job_id}", daemon=True)
        self._beat.start()

    def _write(self, **values: Any) -> None:
        with self._lock, self.sessions.begin() as s:
            s.execute(update(Job).where(Job.id == self.job_id).values(updated_at=utcnow(), **values)
                      .execution_options(synchronize_session=False))
            if s.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                self.cancelled.set()

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self._write()
            except Exception:  # the database is briefly unreachable: try again next beat
                log.exception("job %d heartbeat failed", self.job_id)

    def check(self) -> None:
        """Raise JobCancelled if Cancel was pressed."""
        if self.cancelled.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def __call__(self, fraction: float, desc: str = "") -> None:
        """Progress in [0, 1] with a stage description; the ETA comes from the time taken so far."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        elapsed = time.monotonic() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction >= 0.05 else None
        self._write(progress=fraction, stage=desc[:500], eta_seconds=eta)
        self.check()

    def finish(self, state: str, report: Optional[dict[str, Any]] = None, error: Optional[str] = None) -> None:
        self._stop.set()
        with self._lock, self.sessions.begin() as s:
            finish_job(s, self.job_id, state, report, error)
