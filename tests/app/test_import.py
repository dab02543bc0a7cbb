"""Importing app.py, and building the Blocks, touch neither the database nor a model, and start no server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
import json, os, sys, threading
before = set(os.listdir("."))
import app
after_import = {
    "torch": "torch" in sys.modules, "predictor": "mmsa_core.predictor" in sys.modules,
    "new_files": sorted(set(os.listdir(".")) - before), "data_dir": os.path.exists(os.environ["MMSA_DATA_DIR"]),
    "threads": sorted(t.name for t in threading.enumerate() if t is not threading.main_thread()),
}
ctx = app.AppContext()
demo = app.build_demo(ctx)
after_build = {
    "loaded_models": ctx.models.loaded(), "db_opened": ctx._sessions is not None,
    "data_dir": os.path.exists(os.environ["MMSA_DATA_DIR"]), "new_files": sorted(set(os.listdir(".")) - before),
    "launched": bool(getattr(demo, "server", None)),
}
print(json.dumps({"import": after_import, "build": after_build}))
"""


def test_import_and_build_have_no_side_effects(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMSA_DATA_DIR": str(tmp_path / "data"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("MMSA_CHECKPOINT", None)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["import"] == {"torch": False, "predictor": False, "new_files": [], "data_dir": False, "threads": []}
    assert got["build"] == {"loaded_models": [], "db_opened": False, "data_dir": False, "new_files": [],
                            "launched": False}


def test_app_sets_analytics_off_before_gradio_loads():
    source = (REPO / "app.py").read_text()
    assert source.index('os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")') < source.index("import gradio")
