"""Versioned, hash-checked snapshots of every annotator's work, for training and for people.

    <out_dir>/<export_id>/           (out_dir defaults to <data_dir>/exports)
        manifest.json                export id, format version, label schema, rule, counts, hashes
        posts.jsonl                  one labelled post per line, sorted by post_id, with every
                                     annotator's label in force, the majority, tie, adjudication, final label
        posts.csv                    the same, one row per post (spreadsheet-safe, see export_files)
        annotations.csv              one row per label in force: post_id, annotator, label, note, labelled_at
        images/<sha256>.<ext>        the posts' images (content-addressed, so the name is the hash)
        imagefolder/                 for `datasets.load_dataset("imagefolder", data_dir=...)`: the images
                                     of posts with a final label, and metadata.jsonl with their labels

Rule `latest-majority`: each annotator's label in force on a post (their latest row, when it is a
label) is one vote; the label with most votes is the majority. A tie has no majority: the post is
kept with `tie: true`. A reviewer's adjudication in force (annotations.review) decides: the final
label is the adjudicated label, else the majority, else none (an unresolved tie).

`load_export(path)` checks every hash and returns the posts with a final label as training rows
(`label` = final label); it reads format 1 exports too, and needs neither torch nor a database.
CLI: `python -m annotations.export --db URL --out DIR`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotations.db import (
    check_at_head,
    create_engine_from_url,
    create_sessionmaker,
    default_data_dir,
    default_db_url,
)
from annotations.errors import AnnotationError, ExportIntegrityError
from annotations.export_files import write_csvs, write_images, write_imagefolder, write_jsonl
from annotations.images import image_relpath, sha256_file
from annotations.labels import LABELS
from annotations.models import Export, Post, utcnow
from annotations.review import post_verdicts

log = logging.getLogger(__name__)

FORMAT = "mmsa-annotations-export"
FORMAT_VERSION = 2  # 2: every annotator's labels, ties kept, adjudication, CSVs, imagefolder
RULES = {
    "latest-majority": "each annotator's label in force on a post (their latest row, when it is a label: "
    "retracted and skipped posts give no vote) is one vote; the label with most votes is the majority, and a "
    "tie has none (kept, flagged tie); final_label is the reviewer's adjudicated label, else the majority, "
    "else null (not a training row)",
}


def _post_rows(session: Session) -> list[dict[str, Any]]:
    """One row per post with a label in force or an adjudication, sorted by post_id."""
    verdicts = post_verdicts(session)
    rows = []
    ids = sorted(verdicts)
    for start in range(0, len(ids), 500):  # bounded IN lists
        for post in session.scalars(select(Post).where(Post.id.in_(ids[start:start + 500])).order_by(Post.id)):
            v = verdicts[post.id]
            adj = v["adjudication"]
            rows.append({
                "post_id": post.id, "source": post.source, "text": post.text,
                "image": f"images/{post.image_sha256}.{post.image_ext}" if post.image_sha256 else None,
                "image_missing": False,
                "annotations": [{k: r[k] for k in ("annotator", "label", "note", "labelled_at")} for r in v["labels"]],
                "n_votes": v["n_votes"], "votes": v["votes"], "majority": v["majority"], "tie": v["tie"],
                "adjudicated": v["adjudicated"],
                "adjudication": {k: adj[k] for k in ("reviewer", "label", "note", "adjudicated_at", "outdated")}
                if adj else None,
                "final_label": v["final_label"],
                "_src": image_relpath(post.image_sha256, post.image_ext or "") if post.image_sha256 else None,
            })
    return rows


def _content_sha256(files: dict[str, str]) -> str:
    """One hash over every file: sha256 of `"<sha256>  <relative path>\\n"` lines sorted by path."""
    listing = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


def _summary(rows: list[dict[str, Any]], imagefolder: dict[str, int]) -> dict[str, Any]:
    final = [r for r in rows if r["final_label"] is not None]
    return {
        "n_posts": len(rows), "n_rows": len(final),
        "counts": {lab: sum(r["final_label"] == lab for r in final) for lab in LABELS},
        "n_annotations": sum(len(r["annotations"]) for r in rows),
        "n_ties": sum(r["tie"] for r in rows),
        "n_adjudicated": sum(r["adjudicated"] is not None for r in rows),
        "n_without_final_label": len(rows) - len(final),
        "n_images_missing": sum(r["image_missing"] for r in rows),
        "imagefolder": imagefolder,
    }


def export_snapshot(
    session: Session,
    data_dir: Optional[Union[str, Path]] = None,
    out_dir: Optional[Union[str, Path]] = None,
    rule: str = "latest-majority",
) -> dict[str, Any]:
    """Write a snapshot of every labelled post; returns its manifest plus 'path'.

    Manifest counts: n_posts (lines in posts.jsonl), n_rows and counts (posts with a final label:
    the training rows), n_annotations, n_ties (kept), n_adjudicated, n_without_final_label,
    n_images_missing (such posts keep their labels with image null) and imagefolder {n_rows,
    left_out_no_image, left_out_no_final_label}. The directory is assembled under a temporary name
    and renamed into place, and the export is recorded in the `exports` table (in the caller's
    transaction).
    """
    if rule not in RULES:
        raise AnnotationError(f"Unknown export rule {rule!r}; choose from {sorted(RULES)}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    out_dir = Path(out_dir) if out_dir is not None else data_dir / "exports"
    rows = _post_rows(session)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".tmp-{uuid.uuid4().hex}"
    try:
        files = write_images(tmp, rows, data_dir)
        files.update(write_jsonl(tmp, rows))
        files.update(write_csvs(tmp, rows))
        folder_files, folder_counts = write_imagefolder(tmp, rows)
        files.update(folder_files)
        created = utcnow()
        content = _content_sha256(files)
        export_id = f"{created:%Y%m%dT%H%M%S.%fZ}-{content[:8]}"
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "export_id": export_id,
            "created_at": created.isoformat(), "label_schema": list(LABELS),
            "rule": {"name": rule, "description": RULES[rule]}, **_summary(rows, folder_counts),
            "files": files, "content_sha256": content,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        final = out_dir / export_id
        session.add(Export(id=export_id, created_at=created, manifest=manifest, path=str(final.absolute())))
        session.flush()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d posts (%d with a final label, %d ties) to %s", manifest["n_posts"], manifest["n_rows"],
             manifest["n_ties"], final)
    return {**manifest, "path": str(final.absolute())}


def load_manifest(path: Union[str, Path]) -> dict[str, Any]:
    """Read an export's manifest.json and check that this code can read its format."""
    file = Path(path) / "manifest.json"
    if not file.is_file():
        raise ExportIntegrityError(f"No manifest.json in {path}: not an annotations export")
    manifest = json.loads(file.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ExportIntegrityError(
            f"{file}: format {manifest.get('format')!r} v{manifest.get('format_version')} is not "
            f"{FORMAT!r} v<={FORMAT_VERSION}; upgrade the annotations package"
        )
    return manifest


def _check_files(root: Path, manifest: dict[str, Any]) -> None:
    expected: dict[str, str] = manifest["files"]
    found = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    if found != set(expected):
        raise ExportIntegrityError(
            f"{root}: files differ from the manifest (missing {sorted(set(expected) - found)[:5]}, "
            f"extra {sorted(found - set(expected))[:5]})"
        )
    for name, sha in expected.items():
        if sha256_file(root / name) != sha:
            raise ExportIntegrityError(f"{root / name}: sha256 does not match the manifest (file changed)")
    if _content_sha256(expected) != manifest["content_sha256"]:
        raise ExportIntegrityError(f"{root}: content_sha256 does not match the manifest's file list")


def load_export(path: Union[str, Path]) -> list[dict[str, Any]]:
    """Training rows of a verified export: the posts with a final label, `label` = that label, each
    with 'image_path' (absolute, or None for text-only posts). Format 2 rows keep every field of
    posts.jsonl (annotations, majority, tie, adjudication, ...); format 1 rows are read as they are.

    Raises ExportIntegrityError if any file is missing, extra or changed.
    """
    root = Path(path)
    manifest = load_manifest(root)
    _check_files(root, manifest)
    with open(root / "posts.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if manifest["format_version"] >= 2:
        if len(rows) != manifest["n_posts"]:
            raise ExportIntegrityError(f"{root}: {len(rows)} posts, the manifest says {manifest['n_posts']}")
        rows = [{**r, "label": r["final_label"]} for r in rows if r["final_label"] is not None]
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in manifest["label_schema"]}
    if len(rows) != manifest["n_rows"] or counts != manifest["counts"]:
        raise ExportIntegrityError(f"{root}: row counts {counts} differ from the manifest {manifest['counts']}")
    for row in rows:
        row["image_path"] = str((root / row["image"]).absolute()) if row["image"] else None
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    """`python -m annotations.export --db URL --out DIR [--data-dir D]`."""
    parser = argparse.ArgumentParser(description="Export the labelled posts as a versioned snapshot.")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or ./data)")
    parser.add_argument("--out", default=None, help="parent directory of the snapshot (default: DATA_DIR/exports)")
    parser.add_argument("--data-dir", default=None, help="where the images live (default: $MMSA_DATA_DIR or ./data)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = create_engine_from_url(args.db or default_db_url(args.data_dir))
    check_at_head(engine)
    with create_sessionmaker(engine).begin() as session:
        manifest = export_snapshot(session, args.data_dir, args.out)
    print(json.dumps({k: manifest[k] for k in ("export_id", "path", "n_posts", "n_rows", "counts", "n_ties",
                                               "n_adjudicated")}))


if __name__ == "__main__":
    main()
