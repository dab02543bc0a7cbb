"""Export -> retrain -> new model version, end to end on a small slice with tiny encoders."""
import pytest
from sqlalchemy import select

from annotations import (create_engine_from_url, create_sessionmaker, import_posts, init_db, list_model_versions,
                         read_posts_csv, save_correction)
from annotations.models import Post as PostRow
from mmsa_core import ModelConfig, TrainConfig
from mmsa_core.retrain import correction_impact, run_retrain
from mmsa_core.train import train, training_posts

from .conftest import TINY


@pytest.fixture()
def setup(tmp_path, mvsa_dir):
    data_dir = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine_from_url(url)
    init_db(engine)
    sessions = create_sessionmaker(engine)
    rows = read_posts_csv(mvsa_dir / "posts.csv")
    picked = [r for r in rows if r["split"] == "train"][:6] + [r for r in rows if r["split"] == "val"][:1]
    import_posts(sessions, picked, data_dir, mvsa_dir / "images", splits=None, progress=False)
    with sessions.begin() as s:
        ids = {p.source: p.id for p in s.scalars(select(PostRow))}
    flip = {"positive": "negative", "negative": "positive", "neutral": "positive"}
    with sessions.begin() as s:
        for r in picked:
            save_correction(s, ids[f"mvsa-single:{r['id']}"], "ana", flip[r["label"]])
    tcfg = TrainConfig(data_dir=str(mvsa_dir), epochs=2, limit=48, cache_dir=str(tmp_path / "cache"), batch_size=16)
    base = tmp_path / "base.pt"
    train(ModelConfig(fusion="concat", **TINY), tcfg, base, progress=False)
    return url, data_dir, base, picked, flip, tcfg


def test_retrain_registers_a_new_version_without_leaking_val(setup, mvsa_dir):
    url, data_dir, base, picked, flip, tcfg = setup
    report = run_retrain(url, data_dir, base, str(mvsa_dir), epochs=2, limit=48)
    assert report["n_corrections"] == 7
    assert report["correction_impact"]["n"] == 6  # the val post's correction never enters training
    assert sum(report["correction_impact"][k] for k in ("fixed", "still_wrong", "regressed", "kept_right")) == 6
    assert (data_dir / "models" / f"{report['model_version']}.pt").exists()
    sessions = create_sessionmaker(create_engine_from_url(url))
    with sessions.begin() as s:
        versions = list_model_versions(s)
    assert [v["name"] for v in versions][0] == report["model_version"]
    assert versions[0]["trained_on_export_id"] == report["export_id"]
    assert sum(v["is_default"] for v in versions) == 1
    promoted = report["new"]["val"]["weighted_f1"] >= report["old"]["val"]["weighted_f1"]
    assert report["promoted"] == promoted and versions[0]["is_default"] == promoted


def test_corrections_override_labels_and_skip_held_out_posts(setup, tmp_path):
    url, data_dir, base, picked, flip, tcfg = setup
    from dataclasses import replace

    from annotations import export_snapshot
    sessions = create_sessionmaker(create_engine_from_url(url))
    with sessions.begin() as s:
        manifest = export_snapshot(s, data_dir)
    train_posts, val = training_posts(replace(tcfg, extra_data=[manifest["path"]]))
    by_id = {p.id: p for p in train_posts}
    for r in picked:
        if r["split"] == "train":
            assert by_id[r["id"]].label == flip[r["label"]]
        else:
            assert r["id"] not in by_id and any(p.id == r["id"] and p.label == r["label"] for p in val)


def test_correction_impact_counts():
    import numpy as np
    got = correction_impact(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), np.array([1, 2, 2, 2]))
    assert got == {"n": 4, "fixed": 1, "still_wrong": 1, "regressed": 1, "kept_right": 1}


def test_retraining_an_ensemble_retrains_every_member(setup, mvsa_dir, tmp_path):
    url, data_dir, base, picked, flip, tcfg = setup
    from dataclasses import replace

    from mmsa_core import load_model
    from mmsa_core.ensemble import save_ensemble
    second = tmp_path / "second.pt"
    train(ModelConfig(fusion="attention_concat", **TINY), replace(tcfg, seed=1), second, progress=False)
    ensemble = save_ensemble([base, second], tmp_path / "ensemble.pt", half=True)
    report = run_retrain(url, data_dir, ensemble, str(mvsa_dir), epochs=1, limit=48)
    assert report["n_members"] == 2
    model, meta = load_model(report["checkpoint"])
    assert meta["kind"] == "ensemble" and [m["config"]["fusion"] for m in meta["members"]] == ["concat",
                                                                                                "attention_concat"]
    assert [m["train_config"]["seed"] for m in meta["members"]] == [0, 1]  # each member keeps its recipe
    assert all(m["train_config"]["extra_data"] == [meta["members"][0]["train_config"]["extra_data"][0]]
               for m in meta["members"])  # ... and learns from the corrections
    assert meta["metrics"]["val"]["accuracy"] == report["new"]["val"]["accuracy"]
    assert meta["stored_dtype"] == "float16"  # stored like the base
    assert not (data_dir / "models" / f"{report['model_version']}.members").exists()
