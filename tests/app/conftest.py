"""One app for the whole test session: a tiny random checkpoint, a temp data folder, a real server.

The weights do not matter here (the wiring does), so the model is ``tests.mmsa_core.conftest.tiny_model``;
set MMSA_TEST_CHECKPOINT to a checkpoint file (or to ``default``, the shipped model) to run the same tests
against a real one.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    if os.environ.get("MMSA_TEST_CHECKPOINT"):
        from mmsa_core import DEFAULT_CHECKPOINT

        chosen = os.environ["MMSA_TEST_CHECKPOINT"]
        return DEFAULT_CHECKPOINT if chosen == "default" else Path(chosen)
    import torch

    from mmsa_core import save_checkpoint
    from tests.mmsa_core.conftest import tiny_model

    torch.manual_seed(0)
    return save_checkpoint(tiny_model("attention_concat"), tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="session")
def settings(tmp_path_factory, checkpoint):
    from mmsa_core import DEFAULT_CHECKPOINT
    from webapp.settings import AppSettings

    override = None if checkpoint == DEFAULT_CHECKPOINT else str(checkpoint)  # the shipped one needs none
    return AppSettings(data_dir=tmp_path_factory.mktemp("app") / "data", db_url=None, checkpoint=override,
                       mvsa_dir=Path("/nonexistent/mvsa"), space_id=None)


@pytest.fixture(scope="session")
def ctx(settings):
    from webapp.context import AppContext

    return AppContext(settings)


@pytest.fixture(scope="session")
def server(ctx) -> Iterator[str]:
    """The app launched in this process on a free port; yields its URL."""
    import app

    demo = app.build_demo(ctx)
    url = app.serve(demo, ctx, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture
def read_db(ctx):
    """A fresh engine on the app's database: what was saved, read back independently of the app."""
    from annotations import create_engine_from_url, create_sessionmaker

    engine = create_engine_from_url(ctx.db_url)
    yield create_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def example():
    from webapp.examples import load_examples

    ex = load_examples()[0]
    return ex.image, ex.text


def pytest_configure(config):
    # Gradio's queue touches pandas options that pandas 3 deprecates: not ours to fix, and not a failure.
    config.addinivalue_line("filterwarnings", "ignore:.*no_silent_downcasting.*")
    config.addinivalue_line("filterwarnings", "ignore:The copy keyword is deprecated.*")
