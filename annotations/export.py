"""Versioned, hash-checked snapshots of the corrected posts, for training.

    <out_dir>/<export_id>/           (out_dir defaults to <data_dir>/exports)
        manifest.json                export id, format version, label schema, rule, counts, hashes
        posts.jsonl                  one corrected post per line, sorted by post_id
        images/<sha256>.<ext>        the posts' images (content-addressed, so the name is the hash)

Rule `latest-majority`: each annotator's label in force on a post (their latest row, when it is a
label) is one vote; the label with most votes wins. Ties: `drop` (default) leaves the post out,
`latest` takes the tied label with the most recent vote.

`load_export(path)` checks every hash before returning rows; it needs neither torch nor a database.
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
from collections import defaultdict
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
from annotations.images import image_relpath, sha256_file
from annotations.labels import LABELS
from annotations.models import Export, Post, utcnow
from annotations.queries import effective_labels_stmt

log = logging.getLogger(__name__)

FORMAT = "mmsa-annotations-export"
FORMAT_VERSION = 1
RULES = {
    "latest-majority": "each annotator's label in force on a post (their latest row, when it is a "
    "label: retracted and skipped posts give no vote) is one vote; the label with most votes wins",
}
TIES = {
    "drop": "posts whose top vote count is shared by two labels are left out",
    "latest": "the tied label with the most recent vote wins",
}


def resolve_votes(votes: list[tuple[str, int]], ties: str = "drop") -> Optional[str]:
    """The winning label of (label, annotation id) votes, or None for a dropped tie."""
    counts: dict[str, int] = defaultdict(int)
    newest: dict[str, int] = {}
    for label, ann_id in votes:
        counts[label] += 1
        newest[label] = max(newest.get(label, ann_id), ann_id)
    top = max(counts.values())
    leaders = [label for label in counts if counts[label] == top]
    if len(leaders) == 1:
        return leaders[0]
    return None if ties == "drop" else max(leaders, key=lambda label: newest[label])


def _resolved_rows(session: Session, ties: str) -> tuple[list[dict[str, Any]], int]:
    votes: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for post_id, _name, label, ann_id in session.execute(effective_labels_stmt()):
        votes[post_id].append((label, ann_id))
    rows, n_ties = [], 0
    ids = sorted(votes)
    for start in range(0, len(ids), 500):  # bounded IN lists
        chunk = ids[start:start + 500]
        for post in session.scalars(select(Post).where(Post.id.in_(chunk)).order_by(Post.id)):
            label = resolve_votes(votes[post.id], ties)
            if label is None:
                n_ties += 1
                continue
            counted = {lab: sum(v == lab for v, _ in votes[post.id]) for lab in LABELS}
            image = f"images/{post.image_sha256}.{post.image_ext}" if post.image_sha256 else None
            rows.append({
                "post_id": post.id, "source": post.source, "text": post.text, "image": image,
                "label": label, "n_votes": len(votes[post.id]), "votes": counted,
                "_src": image_relpath(post.image_sha256, post.image_ext or "") if image else None,
            })
    return rows, n_ties


def _content_sha256(files: dict[str, str]) -> str:
    """One hash over every file: sha256 of `"<sha256>  <relative path>\\n"` lines sorted by path."""
    listing = "".join(f"{files[name]}  {name}\n" for name in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


def _write_files(tmp: Path, rows: list[dict[str, Any]], data_dir: Path) -> dict[str, str]:
    (tmp / "images").mkdir(parents=True)
    files: dict[str, str] = {}
    for row in rows:
        src = row.pop("_src")
        if row["image"] is None or row["image"] in files:
            continue
        shutil.copyfile(data_dir / src, tmp / row["image"])
        files[row["image"]] = sha256_file(tmp / row["image"])
        if files[row["image"]] != Path(row["image"]).stem:
            raise RuntimeError(f"Image {data_dir / src} does not match its content hash: the data dir is corrupt")
    with open(tmp / "posts.jsonl", "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    files["posts.jsonl"] = sha256_file(tmp / "posts.jsonl")
    return files


def export_snapshot(
    session: Session,
    data_dir: Optional[Union[str, Path]] = None,
    out_dir: Optional[Union[str, Path]] = None,
    rule: str = "latest-majority",
    ties: str = "drop",
) -> dict[str, Any]:
    """Write a snapshot of every post with a resolved label; returns its manifest plus 'path'.

    The directory is assembled under a temporary name and renamed into place, and the export is
    recorded in the `exports` table (in the caller's transaction).
    """
    if rule not in RULES:
        raise AnnotationError(f"Unknown export rule {rule!r}; choose from {sorted(RULES)}")
    if ties not in TIES:
        raise AnnotationError(f"Unknown tie rule {ties!r}; choose from {sorted(TIES)}")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    out_dir = Path(out_dir) if out_dir is not None else data_dir / "exports"
    rows, n_ties = _resolved_rows(session, ties)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".tmp-{uuid.uuid4().hex}"
    try:
        files = _write_files(tmp, rows, data_dir)
        created = utcnow()
        content = _content_sha256(files)
        export_id = f"{created:%Y%m%dT%H%M%S.%fZ}-{content[:8]}"
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "export_id": export_id,
            "created_at": created.isoformat(), "label_schema": list(LABELS),
            "rule": {"name": rule, "ties": ties, "description": f"{RULES[rule]}; ties: {TIES[ties]}"},
            "n_rows": len(rows), "counts": {lab: sum(r["label"] == lab for r in rows) for lab in LABELS},
            "n_ties_dropped": n_ties, "files": files, "content_sha256": content,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        final = out_dir / export_id
        session.add(Export(id=export_id, created_at=created, manifest=manifest, path=str(final.absolute())))
        session.flush()
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %d posts (%d ties dropped) to %s", len(rows), n_ties, final)
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
    """Rows of a verified export, each with 'image_path' (absolute, or None for text-only posts).

    Raises ExportIntegrityError if any file is missing, extra or changed.
    """
    root = Path(path)
    manifest = load_manifest(root)
    _check_files(root, manifest)
    with open(root / "posts.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    counts = {lab: sum(r["label"] == lab for r in rows) for lab in manifest["label_schema"]}
    if len(rows) != manifest["n_rows"] or counts != manifest["counts"]:
        raise ExportIntegrityError(f"{root}: row counts {counts} differ from the manifest {manifest['counts']}")
    for row in rows:
        row["image_path"] = str((root / row["image"]).absolute()) if row["image"] else None
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    """`python -m annotations.export --db URL --out DIR [--data-dir D] [--ties drop|latest]`."""
    parser = argparse.ArgumentParser(description="Export the corrected posts as a versioned snapshot.")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or ./data)")
    parser.add_argument("--out", default=None, help="parent directory of the snapshot (default: DATA_DIR/exports)")
    parser.add_argument("--data-dir", default=None, help="where the images live (default: $MMSA_DATA_DIR or ./data)")
    parser.add_argument("--ties", default="drop", choices=sorted(TIES), help="what to do when votes tie")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = create_engine_from_url(args.db or default_db_url(args.data_dir))
    check_at_head(engine)
    with create_sessionmaker(engine).begin() as session:
        manifest = export_snapshot(session, args.data_dir, args.out, ties=args.ties)
    print(json.dumps({k: manifest[k] for k in ("export_id", "path", "n_rows", "counts", "n_ties_dropped")}))


if __name__ == "__main__":
    main()
