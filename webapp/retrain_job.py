"""The "retrain now" button: ``mmsa_core.retrain.run_retrain`` in a background thread, polled by the Dashboard.

One job at a time per app, and a cool-down after each (``retrain_gate``); the page can be closed and reopened
while it runs.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

METRICS = (("accuracy", "accuracy (%)"), ("weighted_f1", "weighted F1 (%)"), ("macro_f1", "macro F1 (%)"),
           ("neutral_recall", "neutral recall"))
TABLE_HEADERS = ["val metric", "before", "after", "change"]


def _default_runner() -> Callable[..., dict]:
    try:
        from mmsa_core.retrain import run_retrain
    except ImportError as e:
        raise RuntimeError("Retraining is not available in this build (mmsa_core.retrain is missing)") from e
    return run_retrain


@dataclass
class JobStatus:
    state: str = "idle"  # idle | running | done | failed
    fraction: float = 0.0
    desc: str = ""
    report: dict | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None  # when the last run ended (done or failed)


def retrain_gate(status: JobStatus, now: float, cooldown_s: float) -> str | None:
    """None when a retrain may start now; else why not: one is running, or the last one ended less than
    ``cooldown_s`` ago (a retrain costs about half an hour of CPU and several GB of memory)."""
    if status.state == "running":
        return f"A retrain is running (started {time.strftime('%H:%M:%S UTC', time.gmtime(status.started))}): " \
               "wait for it to finish"
    if status.finished is not None and now < status.finished + cooldown_s:
        ready = status.finished + cooldown_s
        return (f"The last retrain ended at {time.strftime('%H:%M:%S UTC', time.gmtime(status.finished))}; the next "
                f"can start at {time.strftime('%H:%M:%S UTC', time.gmtime(ready))} (in {int(ready - now) + 1} s)")
    return None


class RetrainJob:
    """Starts ``runner(**kwargs, progress=callback)`` in a thread and reports its progress and result."""

    def __init__(self, runner: Callable[..., dict] | None = None, cooldown_s: float = 0.0):
        self._runner = runner
        self.cooldown_s = cooldown_s
        self._status = JobStatus()
        self._lock = threading.Lock()

    def status(self) -> JobStatus:
        with self._lock:
            return JobStatus(**vars(self._status))

    def start(self, **kwargs) -> bool:
        """Start a run; False when ``retrain_gate`` says no (one is running, or the cool-down is not over)."""
        with self._lock:
            if retrain_gate(self._status, time.time(), self.cooldown_s) is not None:
                return False
            self._status = JobStatus(state="running", desc="starting", finished=self._status.finished)
        threading.Thread(target=self._run, kwargs=kwargs, name="retrain", daemon=True).start()
        return True

    def _progress(self, fraction: float, desc: str = "") -> None:
        with self._lock:
            self._status.fraction, self._status.desc = float(fraction), desc

    def _run(self, **kwargs) -> None:
        try:
            runner = self._runner or _default_runner()
            report = runner(**kwargs, progress=self._progress)
        except Exception as e:  # reported on the page; the app keeps serving
            log.exception("retraining failed")
            with self._lock:
                self._status.state, self._status.error = "failed", f"{e.__class__.__name__}: {e}"
                self._status.finished = time.time()
            return
        with self._lock:
            self._status.state, self._status.report, self._status.fraction = "done", report, 1.0
            self._status.finished = time.time()


def before_after_rows(report: dict) -> list[list]:
    """Old vs new val metrics of a retraining report."""
    old, new = report["old"]["val"], report["new"]["val"]
    rows = []
    for key, name in METRICS:
        a, b = old.get(key), new.get(key)
        if a is None or b is None:
            continue
        rows.append([name, round(a, 3), round(b, 3), f"{b - a:+.3f}"])
    return rows


def status_markdown(st: JobStatus) -> str:
    if st.state == "idle":
        return "No retraining has run since the app started."
    if st.state == "running":
        return f"… Retraining: {100 * st.fraction:.0f}% · {st.desc} · {time.time() - st.started:.0f} s"
    if st.state == "failed":
        return f"✗ Retraining failed: {st.error}"
    r = st.report or {}
    impact = r.get("correction_impact", {})
    verdict = ("✓ promoted: the app now serves it by default" if r.get("promoted")
               else "kept the old default: the new model lost on val")
    return (f"Retrained **{r.get('model_version')}** on {r.get('n_corrections', '?')} corrections "
            f"(export `{r.get('export_id')}`) in {r.get('seconds', 0):.0f} s — {verdict}. Corrected posts: "
            f"fixed {impact.get('fixed', 0)}, still wrong {impact.get('still_wrong', 0)}, "
            f"regressed {impact.get('regressed', 0)} (of {impact.get('n', 0)}).")
