"""Small helpers shared by the benchmarks: percentiles and Markdown output."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path

import numpy as np
import torch


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "median": statistics.median(ms)}


def run_child(cmd: list[str], **popen_kwargs) -> tuple[str | None, float]:
    """Run ``cmd`` in a child process and wait for it; returns its stdout (with ``stdout=subprocess.PIPE``) and
    its own peak RSS in GB (``ru_maxrss`` from ``os.wait4``). Fails with the command when it fails."""
    child = subprocess.Popen(cmd, **popen_kwargs)
    out = child.stdout.read() if child.stdout else None
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS (ru_maxrss, KiB)
    if code := os.waitstatus_to_exitcode(status):
        raise SystemExit(f"exit code {code}: {' '.join(map(str, cmd))}")
    return out, usage.ru_maxrss * 1024 / 1e9


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def emit(markdown: str, out: str | None) -> None:
    print(markdown)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(markdown + "\n")
