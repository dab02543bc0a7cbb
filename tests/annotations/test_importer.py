"""import_posts: MVSA-style rows become queue posts, idempotently."""
from __future__ import annotations

import csv

import pytest

import annotations as A

ROWS = [
    {"id": "1", "text": "train row", "split": "train", "label": "positive", "text_label": "positive",
     "image_label": "positive"},
    {"id": "37", "text": "happy valentine", "split": "unlabeled", "label": "", "text_label": "positive",
     "image_label": "negative"},
    {"id": "50", "text": "val row", "split": "val", "label": "neutral", "text_label": "neutral",
     "image_label": "positive"},
    {"id": "51", "text": "test row", "split": "test", "label": "", "text_label": "", "image_label": ""},
]


@pytest.fixture
def mvsa(tmp_path, jpeg):
    images = tmp_path / "mvsa" / "images"
    images.mkdir(parents=True)
    for row in ROWS:
        (images / f"{row['id']}.jpg").write_bytes(jpeg(row["id"]))
    path = tmp_path / "mvsa" / "posts.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return path, images


def test_import_is_idempotent(sessions, data_dir, mvsa, row_counts):
    csv_path, images = mvsa
    rows = A.read_posts_csv(csv_path)
    first = A.import_posts(sessions, rows, data_dir, images, batch_size=1, progress=False)
    assert first == {"added": 2, "existing": 0, "filtered": 2}
    again = A.import_posts(sessions, rows, data_dir, images, progress=False)
    assert again == {"added": 0, "existing": 2, "filtered": 2}
    assert row_counts()["posts"] == 2
    with sessions() as s:
        item = A.next_in_queue(s, "ana", "conflict", data_dir=data_dir)
        assert item["source"] == "mvsa-single:37" and item["conflict"] == 1.0
        assert open(item["image_path"], "rb").read() == (images / "37.jpg").read_bytes()


def test_import_missing_image_writes_nothing(sessions, data_dir, mvsa, row_counts):
    csv_path, images = mvsa
    (images / "50.jpg").unlink()
    with pytest.raises(A.AnnotationError, match="Image file not found"):
        A.import_posts(sessions, A.read_posts_csv(csv_path), data_dir, images, progress=False)
    assert row_counts()["posts"] == 0  # one batch: rolled back as a whole
    assert not (data_dir / "images").exists()  # and no image file was written


def test_import_cli(db_url, data_dir, mvsa):
    import json
    import subprocess
    import sys
    from pathlib import Path

    csv_path, images = mvsa
    out = subprocess.run(
        [sys.executable, "-m", "annotations.importer", "--db", db_url, "--data-dir", str(data_dir),
         "--csv", str(csv_path), "--images", str(images), "--splits", "all"],
        capture_output=True, text=True, check=True, cwd=Path(A.__file__).parents[1],
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"added": 4, "existing": 0, "filtered": 0}


def test_import_with_labels_makes_them_the_annotators_labels(sessions, data_dir, tmp_path, jpeg, row_counts):
    images = tmp_path / "ours"
    images.mkdir()
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(png, "PNG")
    (images / "a.png").write_bytes(png.getvalue())  # any image suffix is found
    (images / "b.jpg").write_bytes(jpeg("b"))
    (images / "c.jpg").write_bytes(jpeg("c"))
    rows = [{"id": "a", "text": "so good", "label": "positive"}, {"id": "b", "text": "meh", "label": ""},
            {"id": "c", "text": "awful", "label": "negative"}]
    got = A.import_posts(sessions, rows, data_dir, images, splits=None, source_prefix="ours", labels_as="team",
                         progress=False)
    assert got == {"added": 3, "existing": 0, "filtered": 0, "labelled": 2, "unchanged_labels": 0, "unlabelled": 1}
    rows[2]["label"] = "neutral"  # a corrected CSV: the annotator changes their mind on one post
    again = A.import_posts(sessions, rows, data_dir, images, splits=None, source_prefix="ours", labels_as="team",
                           progress=False)
    assert again["labelled"] == 1 and again["unchanged_labels"] == 1 and again["added"] == 0
    with sessions() as s:
        labels = {A.get_post(s, r["post_id"])["source"]: r["label"] for r in A.history(s, annotator="team")
                  if r["current"]}
    assert labels == {"ours:a": "positive", "ours:c": "neutral"}


def test_an_unknown_label_stops_the_import_before_writing(sessions, data_dir, tmp_path, jpeg, row_counts):
    images = tmp_path / "ours"
    images.mkdir()
    (images / "a.jpg").write_bytes(jpeg("a"))
    with pytest.raises(A.AnnotationError, match="Line 2 .*unknown label 'great'"):
        A.import_posts(sessions, [{"id": "a", "text": "x", "label": "great"}], data_dir, images, splits=None,
                       labels_as="team", progress=False)
    assert row_counts()["posts"] == 0


def test_import_cli_with_labels(db_url, data_dir, mvsa):
    import json
    import subprocess
    import sys
    from pathlib import Path

    csv_path, images = mvsa
    cmd = [sys.executable, "-m", "annotations.importer", "--db", db_url, "--data-dir", str(data_dir),
           "--csv", str(csv_path), "--images", str(images), "--labels", "--annotator", "mvsa-import"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(A.__file__).parents[1])
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["added"] == 4 and got["labelled"] == 2 and got["unlabelled"] == 2  # every split, by default
    no_name = subprocess.run(cmd[:-2], capture_output=True, text=True, cwd=Path(A.__file__).parents[1])
    assert no_name.returncode != 0 and "--annotator" in no_name.stderr
