"""Importing the package pulls in neither torch nor gradio, and has no side effects."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, sys
before = set(os.listdir("."))
import annotations, annotations.export, annotations.importer, annotations.queue, annotations.stats
import annotations.migrations
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "gradio", "torchvision", "transformers"})
print(json.dumps({"heavy": heavy, "new_files": sorted(set(os.listdir(".")) - before)}))
"""


def test_import_does_not_pull_torch_or_gradio(tmp_path):
    env_path = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    got = json.loads(out.stdout)
    assert got == {"heavy": [], "new_files": []}  # e.g. no ./data directory created on import
