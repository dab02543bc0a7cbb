"""Export -> load_export round trip, the disagreement rule, and tamper detection."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import annotations as A
from annotations import ExportIntegrityError
from annotations.export import resolve_votes


@pytest.fixture
def voted(sessions, data_dir, jpeg):
    """Posts: 0 majority negative (2:1), 1 tie (1:1, bob's vote newest), 2 one vote, 3 retracted only,
    4 text-only with one vote, 5 no votes."""
    with sessions.begin() as s:
        p = [A.add_post(s, f"post {i}", jpeg(f"img{i}"), f"test:{i}", data_dir) for i in range(4)]
        p.append(A.add_post(s, "text only", data_dir=data_dir))
        p.append(A.add_post(s, "never labelled", data_dir=data_dir))
        A.save_correction(s, p[0], "ana", "negative")
        A.save_correction(s, p[0], "bob", "negative")
        A.save_correction(s, p[0], "cid", "positive")
        A.save_correction(s, p[1], "ana", "positive")
        A.save_correction(s, p[1], "bob", "neutral")
        A.save_correction(s, p[2], "ana", "neutral")
        A.save_correction(s, p[3], "ana", "positive")
        A.undo_last(s, "ana", post_id=p[3])
        A.save_correction(s, p[4], "bob", "positive")
    return p


def test_export_roundtrip(sessions, data_dir, voted, jpeg):
    with sessions.begin() as s:
        manifest = A.export_snapshot(s, data_dir)
    path = Path(manifest["path"])
    assert path.parent == data_dir / "exports" and path.name == manifest["export_id"]
    assert manifest["rule"]["name"] == "latest-majority" and manifest["rule"]["ties"] == "drop"
    assert manifest["label_schema"] == ["negative", "neutral", "positive"] and manifest["format_version"] == 1
    assert manifest["n_rows"] == 3 and manifest["n_ties_dropped"] == 1
    assert manifest["counts"] == {"negative": 1, "neutral": 1, "positive": 1}
    rows = A.load_export(path)
    by_id = {r["post_id"]: r for r in rows}
    assert set(by_id) == {voted[0], voted[2], voted[4]}
    first = by_id[voted[0]]
    assert first["label"] == "negative" and first["n_votes"] == 3 and first["source"] == "test:0"
    assert first["votes"] == {"negative": 2, "neutral": 0, "positive": 1}
    assert Path(first["image_path"]).read_bytes() == jpeg("img0")
    assert first["image"].startswith("images/") and by_id[voted[4]]["image_path"] is None
    assert json.loads((path / "manifest.json").read_text())["content_sha256"] == manifest["content_sha256"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_tie_rule_latest(sessions, data_dir, voted, tmp_path):
    with sessions.begin() as s:
        manifest = A.export_snapshot(s, data_dir, tmp_path / "out", ties="latest")
    rows = {r["post_id"]: r for r in A.load_export(manifest["path"])}
    assert rows[voted[1]]["label"] == "neutral"  # bob's vote was the newer one
    assert manifest["n_ties_dropped"] == 0 and manifest["n_rows"] == 4


def test_resolve_votes():
    assert resolve_votes([("positive", 1), ("negative", 2), ("positive", 3)]) == "positive"
    assert resolve_votes([("positive", 5), ("negative", 2)]) is None
    assert resolve_votes([("positive", 5), ("negative", 2)], ties="latest") == "positive"


def test_unknown_rule_is_refused(sessions, data_dir):
    with sessions.begin() as s, pytest.raises(ValueError, match="choose from"):
        A.export_snapshot(s, data_dir, ties="coin-flip")


@pytest.mark.parametrize("tamper, message", [
    (lambda p: (p / "posts.jsonl").write_text((p / "posts.jsonl").read_text().replace("negative", "positive")),
     "posts.jsonl: sha256 does not match"),
    (lambda p: next((p / "images").iterdir()).write_bytes(b"\xff\xd8\xffchanged"), "sha256 does not match"),
    (lambda p: next((p / "images").iterdir()).unlink(), "files differ from the manifest"),
    (lambda p: (p / "images" / "extra.jpg").write_bytes(b"x"), "files differ from the manifest"),
    (lambda p: (p / "manifest.json").unlink(), "No manifest.json"),
])
def test_tampered_export_fails(sessions, data_dir, voted, tamper, message):
    with sessions.begin() as s:
        path = Path(A.export_snapshot(s, data_dir)["path"])
    A.load_export(path)
    tamper(path)
    with pytest.raises(ExportIntegrityError, match=message):
        A.load_export(path)


def test_export_cli(sessions, db_url, data_dir, voted, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "annotations.export", "--db", db_url, "--out", str(tmp_path / "cli"),
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, cwd=Path(A.__file__).parents[1],
    )
    summary = json.loads(out.stdout)
    assert summary["n_rows"] == 3 and len(A.load_export(summary["path"])) == 3
