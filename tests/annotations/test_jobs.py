"""Background jobs in the database: one active job per kind, cool-down, heartbeats, cancel, stale workers."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from annotations.jobs import (JobBusy, JobCancelled, JobReporter, active_job, get_job, latest_job, request_cancel,
                              start_job)
from annotations.models import Job, utcnow


def test_one_active_job_per_kind_and_a_cooldown(sessions):
    with sessions.begin() as s:
        job = start_job(s, "retrain", requested_by="ana", params={"base": "db"})
    with sessions.begin() as s, pytest.raises(JobBusy, match="already queued"):
        start_job(s, "retrain", requested_by="bob")
    with sessions.begin() as s:  # another kind is independent
        start_job(s, "export")
    reporter = JobReporter(sessions, job["job_id"], heartbeat_s=3600)
    reporter(0.5, "training member 1/3")
    reporter.finish("done", report={"promoted": True})
    with sessions.begin() as s:
        done = get_job(s, job["job_id"])
        assert (done["state"], done["progress"], done["report"]) == ("done", 1.0, {"promoted": True})
        with pytest.raises(JobBusy, match="next one can start in"):
            start_job(s, "retrain", cooldown_s=600)
        assert start_job(s, "retrain", cooldown_s=0)["state"] == "queued"


def test_cancel_reaches_the_worker_and_a_queued_job_cancels_at_once(sessions):
    with sessions.begin() as s:
        job = start_job(s, "retrain")
    reporter = JobReporter(sessions, job["job_id"], heartbeat_s=3600)
    reporter(0.1, "features")
    with sessions.begin() as s:
        request_cancel(s, job["job_id"])
    with pytest.raises(JobCancelled):
        reporter(0.2, "training")
    reporter.finish("cancelled")
    with sessions.begin() as s:
        assert get_job(s, job["job_id"])["state"] == "cancelled" and active_job(s, "retrain") is None
        queued = start_job(s, "retrain")
        assert request_cancel(s, queued["job_id"])["state"] == "cancelled"


def test_a_worker_that_stops_reporting_is_failed_and_frees_the_slot(sessions):
    with sessions.begin() as s:
        job = start_job(s, "retrain")
        s.execute(update(Job).where(Job.id == job["job_id"]).values(
            state="running", updated_at=utcnow() - dt.timedelta(hours=1)))
    with sessions.begin() as s:
        assert active_job(s, "retrain") is None
        failed = latest_job(s, "retrain")
        assert failed["state"] == "failed" and "stopped reporting" in failed["error"]
        assert start_job(s, "retrain")["state"] == "queued"


def test_a_job_is_claimed_once(sessions):
    with sessions.begin() as s:
        job = start_job(s, "retrain")
    JobReporter(sessions, job["job_id"], heartbeat_s=3600)
    with pytest.raises(ValueError, match="not waiting for a worker"):
        JobReporter(sessions, job["job_id"], heartbeat_s=3600)
