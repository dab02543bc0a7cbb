"""Every table written through the store API and read back."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

import annotations as A
from annotations.models import Post


def test_store_roundtrip_every_table(sessions, data_dir, roundtrip, row_counts):
    ids = roundtrip(sessions, data_dir, "sqlite")
    assert row_counts() == {
        "posts": 1, "predictions": 1, "annotators": 1, "annotations": 1, "model_versions": 1, "exports": 1,
        "adjudications": 0,
    }
    assert ids["export"]["n_rows"] == 1


def test_same_image_twice_is_one_file(sessions, data_dir, image_file):
    path = image_file("cat")
    with sessions.begin() as s:
        a = A.add_post(s, "first", path, data_dir=data_dir)
        b = A.add_post(s, "second", path.read_bytes(), data_dir=data_dir)
    with sessions() as s:
        pa, pb = A.get_post(s, a, data_dir), A.get_post(s, b, data_dir)
    assert pa["image"] == pb["image"] and pa["image"].startswith("images/")
    files = [p for p in (data_dir / "images").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name.endswith(".jpg") and not files[0].name.startswith(".tmp")


def test_text_only_post_and_different_uploads(sessions, data_dir):
    with sessions.begin() as s:
        a = A.add_post(s, "one text", data_dir=data_dir)
        b = A.add_post(s, "another text", data_dir=data_dir)
        got = A.get_post(s, a, data_dir)
    assert a != b  # two uploads of different content are two posts
    assert got["image"] is None and got["image_path"] is None and got["prediction"] is None
    assert got["source"] == "upload" and got["set_aside"] is None


def test_named_source_is_unique(sessions, data_dir):
    with sessions.begin() as s:
        a = A.add_post(s, "x", source="mvsa-single:7", data_dir=data_dir)
        b = A.add_post(s, "x again", source="mvsa-single:7", data_dir=data_dir)
        n = len(s.scalars(select(Post)).all())
    assert a == b and n == 1


def test_latest_prediction_drives_post(sessions, data_dir):
    with sessions.begin() as s:
        post = A.add_post(s, "text", data_dir=data_dir)
        A.record_prediction(s, post, "positive", {"negative": 0.1, "neutral": 0.1, "positive": 0.8})
        second = A.record_prediction(s, post, "neutral", (0.3, 0.4, 0.3), "m2")
    with sessions() as s:
        pred = A.get_post(s, post)["prediction"]
    assert pred["prediction_id"] == second and pred["label"] == "neutral"
    assert pred["confidence"] == 0.4 and pred["model_version_id"] is None and pred["model_name"] == "m2"


def test_set_default_model_keeps_one_default(sessions, tmp_path: Path):
    with sessions.begin() as s:
        A.register_model_version(s, "a", tmp_path / "a.pt", checkpoint_sha256="0" * 64, make_default=True)
        A.register_model_version(s, "b", tmp_path / "b.pt", checkpoint_sha256="1" * 64,
                                 trained_on_export_id="exp-1")
        A.set_default_model(s, "b")
    with sessions() as s:
        models = A.list_model_versions(s)
        assert [m["name"] for m in models] == ["b", "a"]  # newest first
        assert [m["is_default"] for m in models] == [True, False]
        assert A.get_default_model(s)["trained_on_export_id"] == "exp-1"
