"""The "Retrain now" button: a job in the database, run by a process of its own.

The web process only queues the job (``annotations.jobs``: one active job, then a cool-down) and starts
``python -m mmsa_core.retrain --job ID``, which reports its stage, progress, ETA and heartbeat to the job's
row and watches it for Cancel. So training never runs inside the web process, the job survives an app
restart, and every replica of the app over one database shows the same job. The worker's log goes to
``<data>/jobs/job-<id>.log``.
"""
from __future__ import annotations

import html
import logging
import os
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

KIND = "retrain"
REPO = Path(__file__).resolve().parents[1]
METRICS = (("accuracy", "accuracy (%)"), ("weighted_f1", "weighted F1 (%)"), ("macro_f1", "macro F1 (%)"),
           ("neutral_recall", "neutral recall"))
TABLE_HEADERS = ["judged on", "metric", "before", "after", "change"]
SETS = (("audit", "audit set (database labels, never trained on)"), ("val", "MVSA-Single val"))


def launch_worker(job_id: int, db_url: str, data_dir: Path, mvsa_dir: Path) -> subprocess.Popen:
    """Start the worker in a new session (it outlives an app restart). The database URL travels in the
    environment, not on the command line, so a password in it does not show in ``ps``."""
    log_path = data_dir / "jobs" / f"job-{job_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MMSA_DB_URL": db_url, "MMSA_DATA_DIR": str(data_dir), "TQDM_DISABLE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    with open(log_path, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mmsa_core.retrain", "--job", str(job_id),
                                 "--mvsa-dir", str(mvsa_dir)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


class RetrainJobs:
    """Queue, watch and cancel retraining jobs; ``launcher(job_id, db_url, data_dir, mvsa_dir)`` starts a worker."""

    def __init__(self, ctx, launcher=launch_worker):
        self.ctx, self.launcher = ctx, launcher

    def start(self, requested_by: str | None, force: bool, base_checkpoint: str) -> dict:
        """Queue a job and start its worker; ``annotations.jobs.JobBusy`` when one is queued or running, or
        the cool-down after the last one has not passed."""
        from annotations.jobs import finish_job, start_job

        settings = self.ctx.settings
        params = {"force": bool(force), "base": "auto", "base_checkpoint": base_checkpoint,
                  "mvsa_dir": str(settings.mvsa_dir)}
        with self.ctx.sessions.begin() as s:
            job = start_job(s, KIND, requested_by, params, cooldown_s=settings.retrain_cooldown_s)
        try:
            self.launcher(job["job_id"], self.ctx.db_url, settings.data_dir, settings.mvsa_dir)
        except OSError as e:  # the worker could not even start: say so on the job instead of leaving it queued
            with self.ctx.sessions.begin() as s:
                finish_job(s, job["job_id"], "failed", error=f"could not start the worker: {e}")
            raise
        log.info("retrain job #%d queued by %s", job["job_id"], requested_by)
        return job

    def latest(self) -> dict | None:
        from annotations.jobs import latest_job

        with self.ctx.sessions.begin() as s:
            return latest_job(s, KIND)

    def running(self) -> bool:
        job = self.latest()
        return bool(job) and job["state"] in ("queued", "running")

    def cancel(self) -> dict | None:
        """Ask the active job to stop (a queued one stops at once); None when nothing is running."""
        from annotations.jobs import active_job, request_cancel

        with self.ctx.sessions.begin() as s:
            job = active_job(s, KIND)
            return request_cancel(s, job["job_id"]) if job else None


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating the time left…"
    return f"about {seconds / 60:.0f} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


def status_html(job: dict | None) -> str:
    """The job as a progress bar with its stage and ETA, or its outcome. Every string is escaped."""
    if job is None:
        return "<p>No retraining has run yet.</p>"
    e = html.escape
    who = f" by {e(job['requested_by'])}" if job.get("requested_by") else ""
    if job["state"] in ("queued", "running"):
        pct = 100 * (job["progress"] or 0.0)
        stage = job["stage"] or ("waiting for the worker to start" if job["state"] == "queued" else "starting")
        cancel = " · <b>cancelling…</b>" if job.get("cancel_requested") else ""
        return (f'<div class="retrain-job"><progress value="{pct:.1f}" max="100" style="width:100%"></progress>'
                f"<p>Retraining #{job['job_id']}{who}: <b>{pct:.0f}%</b> · {e(stage)} · {_eta(job['eta_seconds'])}"
                f"{cancel}</p></div>")
    if job["state"] == "failed":
        return f"<p>✗ Retraining #{job['job_id']}{who} failed: {e(job['error'] or 'unknown error')}</p>"
    if job["state"] == "cancelled":
        return f"<p>Retraining #{job['job_id']}{who} was cancelled; the current model keeps serving.</p>"
    r = job.get("report") or {}
    verdict = ("✓ promoted: the app now serves it by default" if r.get("promoted")
               else "kept the current model")
    impact = r.get("audit_impact") or {}
    return (f"<p>Retrained <b>{e(str(r.get('model_version', '?')))}</b> on {e(str(r.get('data', '?')))} in "
            f"{r.get('seconds', 0) / 60:.1f} min: {verdict} ({e(str(r.get('reason', '')))}). Audit posts: fixed "
            f"{impact.get('fixed', 0)}, regressed {impact.get('regressed', 0)}, still wrong "
            f"{impact.get('still_wrong', 0)} (of {impact.get('n', 0)}).</p>")


def before_after_rows(report: dict | None) -> list[list]:
    """Old vs new metrics on each judging set of a finished job's report."""
    rows = []
    for key, where in SETS:
        old, new = (report or {}).get("old", {}).get(key), (report or {}).get("new", {}).get(key)
        if not old or not new:
            continue
        for metric, name in METRICS:
            a, b = old.get(metric), new.get(metric)
            if a is not None and b is not None:
                rows.append([f"{where} ({old.get('n', '?')} posts)", name, round(a, 3), round(b, 3), f"{b - a:+.3f}"])
    return rows


def plan_line(base_available: bool, n_labels: int, val_trained: bool = False) -> str:
    """What a retrain would train on, said before it starts. ``val_trained``: MVSA val trained the served model
    (the shipped default is refit on train + val), so val trains again and only the audit set judges."""
    if base_available and val_trained:
        return (f"Retraining uses MVSA-Single train and val + the {n_labels} labelled posts of the database; a fifth "
                "of those form the audit set that judges the new model (MVSA val trained the served model).")
    if base_available:
        return (f"Retraining uses MVSA-Single train + the {n_labels} labelled posts of the database, and judges the "
                "new model on MVSA val and on the audit set (a fifth of those posts).")
    return (f"Retraining uses the {n_labels} labelled posts of the database (MVSA-Single is not on this machine); "
            "a fifth of them form the audit set that judges the new model.")
