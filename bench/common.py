"""Small helpers shared by the benchmarks: percentiles and Markdown output."""
from __future__ import annotations

import platform
import statistics
from pathlib import Path

import numpy as np
import torch


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "median": statistics.median(ms)}


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def emit(markdown: str, out: str | None) -> None:
    print(markdown)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(markdown + "\n")
