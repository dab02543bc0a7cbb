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
