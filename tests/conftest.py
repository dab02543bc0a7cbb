"""Shared test set-up: offline, quiet, small."""
import os

# Set before anything imports gradio or transformers: no analytics, no hub calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MVSA_DIR = Path(os.environ.get("MMSA_MVSA_DIR", REPO.parent / "shared" / "data" / "mvsa-single"))


@pytest.fixture(scope="session")
def mvsa_dir() -> Path:
    if not (MVSA_DIR / "posts.csv").exists():
        pytest.skip(f"MVSA-Single not found at {MVSA_DIR} (expected ../shared beside the repository)")
    return MVSA_DIR
