"""The files of an export snapshot (format 2): JSONL, two spreadsheet-safe CSVs and an imagefolder.

Every writer takes the snapshot's temporary directory and the post rows that annotations.export
assembled, and returns {relative path: sha256} of what it wrote, for the manifest.

CSV cells are UTF-8 (with a byte order mark, so that spreadsheet programs read them as UTF-8) and
safe to open in a spreadsheet: following OWASP's CSV injection guidance, a text cell that starts
with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so that it is shown as text
instead of being run as a formula, and every cell is quoted. A note that starts with "-" therefore
reads "'-" in the CSV; posts.jsonl keeps every text exactly as stored.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

from annotations.images import sha256_file
from annotations.labels import LABELS

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
POSTS_CSV_COLUMNS = (
    "post_id", "source", "text", "image", "majority", "tie", "adjudicated", "final_label", "n_votes",
    *(f"votes_{label}" for label in LABELS), "adjudicated_by", "adjudication_note",
)
ANNOTATIONS_CSV_COLUMNS = ("post_id", "annotator", "label", "note", "labelled_at")
IMAGEFOLDER = "imagefolder"


def csv_cell(value: Any) -> str:
    """One CSV cell: '' for None, true/false for booleans, formula-looking text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_cell(row.get(c)) for c in columns])


def write_images(tmp: Path, rows: list[dict[str, Any]], data_dir: Path) -> dict[str, str]:
    """Copy each post's image to images/<sha256>.<ext>; a post whose file is missing gets image None."""
    (tmp / "images").mkdir(parents=True)
    files: dict[str, str] = {}
    for row in rows:
        src = row.pop("_src")
        if row["image"] is None or row["image"] in files:
            continue
        if not (data_dir / src).is_file():
            row["image"], row["image_missing"] = None, True
            continue
        shutil.copyfile(data_dir / src, tmp / row["image"])
        files[row["image"]] = sha256_file(tmp / row["image"])
        if files[row["image"]] != Path(row["image"]).stem:
            raise RuntimeError(f"Image {data_dir / src} does not match its content hash: the data dir is corrupt")
    for row in rows:  # a second post sharing a missing image
        if row["image"] is not None and row["image"] not in files:
            row["image"], row["image_missing"] = None, True
    return files


def write_jsonl(tmp: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    with open(tmp / "posts.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    return {"posts.jsonl": sha256_file(tmp / "posts.jsonl")}


def write_csvs(tmp: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    """posts.csv (one row per post) and annotations.csv (one row per label in force)."""
    flat = []
    for row in rows:
        adj = row["adjudication"] or {}
        flat.append({**row, **{f"votes_{lab}": row["votes"][lab] for lab in LABELS},
                     "adjudicated_by": adj.get("reviewer"), "adjudication_note": adj.get("note")})
    _write_csv(tmp / "posts.csv", POSTS_CSV_COLUMNS, flat)
    labels = [{"post_id": row["post_id"], **ann} for row in rows for ann in row["annotations"]]
    _write_csv(tmp / "annotations.csv", ANNOTATIONS_CSV_COLUMNS, labels)
    return {name: sha256_file(tmp / name) for name in ("posts.csv", "annotations.csv")}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # same bytes as images/: share them on disk
    except OSError:
        shutil.copyfile(src, dst)


def write_imagefolder(tmp: Path, rows: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, int]]:
    """imagefolder/: one image per post with an image and a final label (post-<id>.<ext>, so two posts
    sharing an image stay two rows) and metadata.jsonl, which `datasets.load_dataset("imagefolder",
    data_dir=...)` reads: file_name, text, label (the final label), post_id, tie, adjudicated."""
    folder = tmp / IMAGEFOLDER
    folder.mkdir()
    files: dict[str, str] = {}
    counts = {"n_rows": 0, "left_out_no_image": 0, "left_out_no_final_label": 0}
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as meta:
        for row in rows:
            if row["final_label"] is None:
                counts["left_out_no_final_label"] += 1
                continue
            if row["image"] is None:
                counts["left_out_no_image"] += 1
                continue
            name = f"post-{row['post_id']}{Path(row['image']).suffix}"
            _link_or_copy(tmp / row["image"], folder / name)
            files[f"{IMAGEFOLDER}/{name}"] = Path(row["image"]).stem  # its sha256, checked on copy
            meta.write(json.dumps({"file_name": name, "text": row["text"], "label": row["final_label"],
                                   "post_id": row["post_id"], "tie": row["tie"],
                                   "adjudicated": row["adjudicated"]}, ensure_ascii=False) + "\n")
            counts["n_rows"] += 1
    files[f"{IMAGEFOLDER}/metadata.jsonl"] = sha256_file(folder / "metadata.jsonl")
    return files, counts
