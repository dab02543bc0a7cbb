"""Export (format 2) -> files -> load_export: every annotator's work kept, ties flagged, adjudication
decides, spreadsheet-safe CSVs, an imagefolder `datasets` loads, format 1 still read, tampering caught."""
from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import annotations as A
from annotations import ExportIntegrityError
from annotations.export_files import csv_cell


@pytest.fixture
def voted(sessions, data_dir, jpeg):
    """Posts: 0 majority negative (2:1), 1 tie (ana positive "bright" vs bob neutral "meh"), 2 one vote,
    3 retracted only, 4 text-only with one vote, 5 no votes."""
    with sessions.begin() as s:
        p = [A.add_post(s, f"post {i}", jpeg(f"img{i}"), f"test:{i}", data_dir) for i in range(4)]
        p.append(A.add_post(s, "text only", data_dir=data_dir))
        p.append(A.add_post(s, "never labelled", data_dir=data_dir))
        A.save_correction(s, p[0], "ana", "negative")
        A.save_correction(s, p[0], "bob", "negative")
        A.save_correction(s, p[0], "cid", "positive")
        A.save_correction(s, p[1], "ana", "positive", note="bright")
        A.save_correction(s, p[1], "bob", "neutral", note="meh")
        A.save_correction(s, p[2], "ana", "neutral")
        A.save_correction(s, p[3], "ana", "positive")
        A.undo_last(s, "ana", post_id=p[3])
        A.save_correction(s, p[4], "bob", "positive")
    return p


def export(sessions, data_dir, **kw):
    with sessions.begin() as s:
        manifest = A.export_snapshot(s, data_dir, **kw)
    return manifest, Path(manifest["path"])


def read_csv(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def jsonl(path):
    return {r["post_id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_export_roundtrip(sessions, data_dir, voted, jpeg):
    manifest, path = export(sessions, data_dir)
    assert path.parent == data_dir / "exports" and path.name == manifest["export_id"]
    assert manifest["format_version"] == 2 and manifest["rule"]["name"] == "latest-majority"
    assert manifest["label_schema"] == ["negative", "neutral", "positive"]
    assert (manifest["n_posts"], manifest["n_rows"], manifest["n_ties"], manifest["n_without_final_label"],
            manifest["n_annotations"], manifest["n_adjudicated"]) == (4, 3, 1, 1, 7, 0)
    assert manifest["counts"] == {"negative": 1, "neutral": 1, "positive": 1}
    assert manifest["imagefolder"] == {"n_rows": 2, "left_out_no_image": 1, "left_out_no_final_label": 1}
    rows = {r["post_id"]: r for r in A.load_export(path)}  # training rows: posts with a final label
    assert set(rows) == {voted[0], voted[2], voted[4]}
    first = rows[voted[0]]
    assert first["label"] == first["final_label"] == first["majority"] == "negative" and first["n_votes"] == 3
    assert first["votes"] == {"negative": 2, "neutral": 0, "positive": 1} and first["source"] == "test:0"
    assert Path(first["image_path"]).read_bytes() == jpeg("img0")
    assert first["image"].startswith("images/") and rows[voted[4]]["image_path"] is None
    assert json.loads((path / "manifest.json").read_text())["content_sha256"] == manifest["content_sha256"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_two_annotators_disagreeing_are_in_every_file(sessions, data_dir, voted):
    manifest, path = export(sessions, data_dir)
    tie = jsonl(path / "posts.jsonl")[voted[1]]  # the tie is kept and flagged
    assert tie["tie"] is True and tie["majority"] is None and tie["final_label"] is None
    assert [(a["annotator"], a["label"], a["note"]) for a in tie["annotations"]] == [
        ("ana", "positive", "bright"), ("bob", "neutral", "meh")]
    assert all(a["labelled_at"].endswith("+00:00") for a in tie["annotations"])
    posts = {int(r["post_id"]): r for r in read_csv(path / "posts.csv")}
    assert list(read_csv(path / "posts.csv")[0])[:10] == [
        "post_id", "source", "text", "image", "majority", "tie", "adjudicated", "final_label", "n_votes",
        "votes_negative"]
    assert (posts[voted[1]]["tie"], posts[voted[1]]["majority"], posts[voted[1]]["final_label"]) == ("true", "", "")
    assert (posts[voted[1]]["votes_positive"], posts[voted[1]]["votes_neutral"]) == ("1", "1")
    labels = [(int(r["post_id"]), r["annotator"], r["label"], r["note"]) for r in read_csv(path / "annotations.csv")]
    assert (voted[1], "ana", "positive", "bright") in labels and (voted[1], "bob", "neutral", "meh") in labels
    assert len(labels) == manifest["n_annotations"] == 7
    meta = [json.loads(line) for line in (path / "imagefolder" / "metadata.jsonl").read_text().splitlines()]
    assert {m["post_id"] for m in meta} == {voted[0], voted[2]}  # the tie has no final label: not a training image
    assert voted[1] not in {r["post_id"] for r in A.load_export(path)}


def test_adjudication_decides_the_final_label_and_training_rows(sessions, data_dir, voted):
    with sessions.begin() as s:
        A.adjudicate(s, voted[1], "rita", "neutral", note="no sentiment really")
        A.adjudicate(s, voted[0], "rita", "positive")  # overrides a majority too
    manifest, path = export(sessions, data_dir)
    assert manifest["n_adjudicated"] == 2 and manifest["n_rows"] == 4 and manifest["n_ties"] == 1
    rows = {r["post_id"]: r for r in A.load_export(path)}
    assert rows[voted[1]]["label"] == "neutral" and rows[voted[1]]["tie"] is True
    assert rows[voted[1]]["adjudication"]["reviewer"] == "rita"
    assert rows[voted[0]]["label"] == "positive" and rows[voted[0]]["majority"] == "negative"
    posts = {int(r["post_id"]): r for r in read_csv(path / "posts.csv")}
    assert (posts[voted[1]]["adjudicated"], posts[voted[1]]["adjudicated_by"],
            posts[voted[1]]["adjudication_note"], posts[voted[1]]["final_label"]) == (
        "neutral", "rita", "no sentiment really", "neutral")
    meta = {m["post_id"]: m for m in map(json.loads, (path / "imagefolder" / "metadata.jsonl").read_text().splitlines())}
    assert (meta[voted[1]]["label"], meta[voted[1]]["tie"], meta[voted[1]]["adjudicated"]) == ("neutral", True, "neutral")


def test_csv_cells_cannot_run_as_formulas(sessions, data_dir):
    with sessions.begin() as s:
        post = A.add_post(s, "=HYPERLINK(\"http://evil\")", data_dir=data_dir)
        A.save_correction(s, post, "@ana", "positive", note="-1+1 caf\u00e9 \u2603")
        A.save_correction(s, post, "bob", "positive", note="+cmd")
    _, path = export(sessions, data_dir)
    [row] = read_csv(path / "posts.csv")
    assert row["text"] == "'=HYPERLINK(\"http://evil\")"
    notes = {r["annotator"]: r["note"] for r in read_csv(path / "annotations.csv")}
    assert notes == {"'@ana": "'-1+1 caf\u00e9 \u2603", "bob": "'+cmd"}
    assert (path / "posts.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for spreadsheets
    assert jsonl(path / "posts.jsonl")[post]["text"] == "=HYPERLINK(\"http://evil\")"  # JSONL keeps it as stored
    assert [csv_cell(v) for v in (None, True, 3, "+x", "a=b", "\tx")] == ["", "true", "3", "'+x", "a=b", "'\tx"]


def test_datasets_loads_the_imagefolder(sessions, data_dir, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="datasets not installed (pip install -r requirements-dev.txt)")
    from PIL import Image

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with sessions.begin() as s:
        ids = []
        for i, (colour, label) in enumerate([("red", "negative"), ("green", "positive"), ("blue", "neutral")]):
            png = tmp_path / f"{colour}.png"
            Image.new("RGB", (8, 8), colour).save(png)
            ids.append(A.add_post(s, f"post {i}", png, data_dir=data_dir))
            A.save_correction(s, ids[-1], "ana", label)
        A.save_correction(s, ids[2], "bob", "positive")  # a tie ...
        A.adjudicate(s, ids[2], "rita", "positive")  # ... that a reviewer settled
        shared = A.add_post(s, "same picture, other words", tmp_path / "red.png", data_dir=data_dir)
        A.save_correction(s, shared, "ana", "neutral")
    _, path = export(sessions, data_dir)
    ds = datasets.load_dataset("imagefolder", data_dir=str(path / "imagefolder"), cache_dir=str(tmp_path / "hf"))
    train = ds["train"]
    got = sorted(zip(train["post_id"], train["label"], train["tie"], train["adjudicated"], train["text"]))
    assert got == [(ids[0], "negative", False, None, "post 0"), (ids[1], "positive", False, None, "post 1"),
                   (ids[2], "positive", True, "positive", "post 2"),
                   (shared, "neutral", False, None, "same picture, other words")]
    assert train[0]["image"].size == (8, 8)


def test_a_missing_image_file_keeps_the_labels(sessions, data_dir, voted):
    (data_dir / next((data_dir / "images").rglob("*.jpg")).relative_to(data_dir)).unlink()
    manifest, path = export(sessions, data_dir)
    assert manifest["n_images_missing"] == 1 and manifest["n_posts"] == 4
    missing = [r for r in jsonl(path / "posts.jsonl").values() if r["image_missing"]]
    assert len(missing) == 1 and missing[0]["image"] is None and missing[0]["annotations"]
    A.load_export(path)


def write_v1_export(root: Path, image: bytes) -> None:
    """A format 1 export as the previous code wrote it (majority labels only, ties dropped)."""
    sha = hashlib.sha256(image).hexdigest()
    (root / "images").mkdir(parents=True)
    (root / "images" / f"{sha}.jpg").write_bytes(image)
    row = {"post_id": 3, "source": "upload", "text": "old", "image": f"images/{sha}.jpg", "label": "positive",
           "n_votes": 1, "votes": {"negative": 0, "neutral": 0, "positive": 1}}
    (root / "posts.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    files = {f"images/{sha}.jpg": sha, "posts.jsonl": hashlib.sha256((root / "posts.jsonl").read_bytes()).hexdigest()}
    listing = "".join(f"{files[n]}  {n}\n" for n in sorted(files))
    manifest = {"format": "mmsa-annotations-export", "format_version": 1, "export_id": "v1", "label_schema":
                ["negative", "neutral", "positive"], "n_rows": 1, "counts": {"negative": 0, "neutral": 0, "positive": 1},
                "n_ties_dropped": 0, "files": files, "content_sha256": hashlib.sha256(listing.encode()).hexdigest()}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_format_1_exports_still_load(tmp_path, jpeg):
    write_v1_export(tmp_path / "v1", jpeg("old"))
    [row] = A.load_export(tmp_path / "v1")
    assert row["label"] == "positive" and Path(row["image_path"]).read_bytes() == jpeg("old")


def test_unknown_rule_is_refused(sessions, data_dir):
    with sessions.begin() as s, pytest.raises(ValueError, match="choose from"):
        A.export_snapshot(s, data_dir, rule="coin-flip")


@pytest.mark.parametrize("tamper, message", [
    (lambda p: (p / "posts.jsonl").write_text((p / "posts.jsonl").read_text().replace("negative", "positive")),
     "posts.jsonl: sha256 does not match"),
    (lambda p: (p / "posts.csv").write_text("post_id\n1\n"), "posts.csv: sha256 does not match"),
    (lambda p: next((p / "images").iterdir()).write_bytes(b"\xff\xd8\xffchanged"), "sha256 does not match"),
    (lambda p: next((p / "images").iterdir()).unlink(), "files differ from the manifest"),
    (lambda p: (p / "images" / "extra.jpg").write_bytes(b"x"), "files differ from the manifest"),
    (lambda p: (p / "imagefolder" / "metadata.jsonl").write_text("{}\n"), "metadata.jsonl: sha256 does not match"),
    (lambda p: (p / "manifest.json").unlink(), "No manifest.json"),
])
def test_tampered_export_fails(sessions, data_dir, voted, tamper, message):
    _, path = export(sessions, data_dir)
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
    assert (summary["n_posts"], summary["n_rows"], summary["n_ties"]) == (4, 3, 1)
    assert len(A.load_export(summary["path"])) == 3
