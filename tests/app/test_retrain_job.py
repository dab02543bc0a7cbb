"""The real retraining worker: ``python -m mmsa_core.retrain --job ID`` started by the app, on the database's
labels alone (no MVSA-Single on this "machine"), reporting to the job row until done."""
from __future__ import annotations

from pathlib import Path

from annotations import list_model_versions, save_correction
from annotations.models import Post

from .helpers import wait_for


def test_the_app_starts_a_worker_process_that_retrains_on_the_database(tmp_path, checkpoint):
    from sqlalchemy import select

    from webapp.context import AppContext
    from webapp.settings import AppSettings

    ctx = AppContext(AppSettings(data_dir=tmp_path / "data", db_url=None, checkpoint=str(checkpoint),
                                 mvsa_dir=Path("/nonexistent/mvsa"), space_id=None))
    with ctx.sessions.begin() as s:  # the seeded example posts, labelled by two people
        ids = list(s.scalars(select(Post.id)))
        for i, post in enumerate(ids):
            save_correction(s, post, "ana", ("negative", "neutral", "positive")[i % 3])
            save_correction(s, post, "bob", ("negative", "neutral", "positive")[i % 3])
    job = ctx.retrain.start("root", force=True, base_checkpoint=str(checkpoint))
    done = wait_for(lambda: (j := ctx.retrain.latest())["state"] not in ("queued", "running") and j, timeout=300)
    log = (tmp_path / "data" / "jobs" / f"job-{job['job_id']}.log").read_text()
    assert done["state"] == "done", (done["error"], log[-2000:])
    report = done["report"]
    assert report["base"] == "db" and report["n_db_labels"] == len(ids) and report["promoted"]  # forced
    assert done["progress"] == 1.0 and done["worker"] and "promoted" in done["stage"]
    with ctx.sessions() as s:
        versions = list_model_versions(s)
    assert versions[0]["name"] == report["model_version"] and versions[0]["is_default"]
    assert Path(versions[0]["checkpoint_path"]).is_file()
    assert ctx.model_choices()[0].name == report["model_version"]  # the app now serves the retrained model


def test_the_plan_says_whether_val_trains_and_what_judges():
    from webapp.retrain_job import plan_line

    assert "train and val" in plan_line(True, 12, val_trained=True) and "judges" in plan_line(True, 12, True)
    assert "train +" in plan_line(True, 12) and "MVSA val" in plan_line(True, 12)
    assert "not on this machine" in plan_line(False, 12, val_trained=True)  # no MVSA: the database alone
