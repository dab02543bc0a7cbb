"""Import posts from a data set into the annotation queue (idempotent), optionally with their labels.

    python -m annotations.importer --csv /work/shared/data/mvsa-single/posts.csv \
        --images /work/shared/data/mvsa-single/images --splits unlabeled,val
    python -m annotations.importer --csv ours.csv --images ours/ --prefix ours --labels --annotator import-2026

With ``--labels`` each row's ``label`` (negative / neutral / positive) is saved as the label of the
annotator named by ``--annotator``: a team's own labelled posts (``id,text,label`` plus ``<id>.jpg``,
``.png``, ``.gif`` or ``.webp`` images) become training material for ``python -m mmsa_core.retrain --base db``.
Running it again changes nothing; a changed label in the CSV becomes that annotator's new label.

Each row becomes a post with source `<prefix>:<id>`; a source that is already in the database is
left alone, and a row whose image and text already exist (under another source, or an upload)
maps to that post (one post per content), so running the import again adds nothing.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tqdm.auto import tqdm

from annotations.db import create_engine_from_url, create_sessionmaker, default_db_url, init_db
from annotations.errors import AnnotationError
from annotations.labels import LABELS, check_annotator_name
from annotations.models import Post
from annotations.store import current_labels, ensure_post, save_correction

log = logging.getLogger(__name__)

DEFAULT_SPLITS = ("unlabeled", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp")


def read_posts_csv(path: Union[str, Path]) -> list[dict[str, str]]:
    """Rows of an MVSA-style posts.csv (`id,text,split,label,text_label,image_label`)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _image_for(image_dir: Optional[Path], post_id: str) -> Optional[Path]:
    """`<image_dir>/<id>.<ext>` for the first image suffix that exists (None: no image folder)."""
    if image_dir is None:
        return None
    for suffix in IMAGE_SUFFIXES:
        if (image_dir / f"{post_id}{suffix}").is_file():
            return image_dir / f"{post_id}{suffix}"
    return image_dir / f"{post_id}.jpg"  # reported as missing below


def _add_batch(session: Session, batch: list[Mapping[str, str]], prefix: str, data_dir: Any,
               image_dir: Optional[Path], labels_as: Optional[str]) -> dict[str, int]:
    sources = {f"{prefix}:{row['id']}": row for row in batch}
    found = session.execute(select(Post.source, Post.id).where(Post.source.in_(list(sources))))
    existing = {source: post_id for source, post_id in found}
    new = {source: row for source, row in sources.items() if source not in existing}
    images = {source: _image_for(image_dir, row["id"]) for source, row in new.items()}
    missing = [str(path) for path in images.values() if path is not None and not path.is_file()]
    if missing:  # checked up front so that a bad batch writes no image files either
        raise AnnotationError(f"Image file not found: {missing[0]} ({len(missing)} missing in this batch)")
    counts = {"added": 0, "existing": 0, "labelled": 0, "unchanged_labels": 0, "unlabelled": 0}
    ids = dict(existing)
    for source, row in new.items():
        ids[source], created = ensure_post(
            session, row.get("text") or "", images[source], source, data_dir,
            text_label=row.get("text_label") or None, image_label=row.get("image_label") or None,
        )
        counts["added"] += created
    counts["existing"] = len(sources) - counts["added"]
    if labels_as is not None:
        for source, row in sources.items():
            label = (row.get("label") or "").strip()
            if not label:
                counts["unlabelled"] += 1
            elif current_labels(session, ids[source]).get(labels_as) == label:
                counts["unchanged_labels"] += 1
            else:
                save_correction(session, ids[source], labels_as, label, note=f"imported from {prefix}:{row['id']}")
                counts["labelled"] += 1
    return counts


def import_posts(
    session_factory: sessionmaker[Session],
    rows: Iterable[Mapping[str, str]],
    data_dir: Optional[Union[str, Path]] = None,
    image_dir: Optional[Union[str, Path]] = None,
    *,
    splits: Optional[Iterable[str]] = DEFAULT_SPLITS,
    source_prefix: str = "mvsa-single",
    batch_size: int = 200,
    progress: bool = True,
    labels_as: Optional[str] = None,
) -> dict[str, int]:
    """Add rows (dicts with id, text, split, text_label, image_label) as posts; idempotent.

    Only rows whose `split` is in `splits` are imported (None: all). Images are read from
    `<image_dir>/<id>.<jpg|jpeg|png|gif|webp>` (None: text-only). With `labels_as`, each row's `label`
    becomes that annotator's label on the post (rows without one are counted as 'unlabelled'; an unknown
    label stops the import before its batch writes anything). One short transaction per batch, so an
    interrupted import keeps what it committed and a re-run completes it. Returns the counts: 'added',
    'existing' (source or content in the database already), 'filtered', and with labels 'labelled',
    'unchanged_labels', 'unlabelled'.
    """
    wanted = set(splits) if splits is not None else None
    if labels_as is not None:
        labels_as = check_annotator_name(labels_as)
    counts = {"added": 0, "existing": 0, "filtered": 0}
    if labels_as is not None:
        counts.update(labelled=0, unchanged_labels=0, unlabelled=0)
    image_path = Path(image_dir) if image_dir is not None else None
    batch: list[Mapping[str, str]] = []

    def flush() -> None:
        with session_factory.begin() as session:
            got = _add_batch(session, batch, source_prefix, data_dir, image_path, labels_as)
        for key in counts:
            counts[key] += got.get(key, 0)
        batch.clear()

    for n, row in enumerate(tqdm(rows, desc="import posts", unit="post", disable=not progress), start=2):
        if "id" not in row:
            raise AnnotationError(f"Row without an 'id' column: {dict(row)!r}")
        if wanted is not None and row.get("split") not in wanted:
            counts["filtered"] += 1
            continue
        label = (row.get("label") or "").strip()
        if labels_as is not None and label and label not in LABELS:
            raise AnnotationError(f"Line {n} (id {row['id']}): unknown label {label!r}; use one of {list(LABELS)}")
        batch.append(row)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    log.info("import: %s", counts)
    return counts


def main(argv: Optional[list[str]] = None) -> None:
    """CLI: import a posts.csv into the database (migrating it first)."""
    parser = argparse.ArgumentParser(description="Import data-set posts into the annotation queue.")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or ./data)")
    parser.add_argument("--data-dir", default=None, help="where images are stored (default: $MMSA_DATA_DIR or ./data)")
    parser.add_argument("--csv", required=True, help="posts.csv with id,text,split,text_label,image_label")
    parser.add_argument("--images", default=None, help="directory of <id>.jpg images")
    parser.add_argument("--splits", default=None,
                        help=f"comma-separated; 'all' for every row (default: {','.join(DEFAULT_SPLITS)}, or all "
                        "with --labels)")
    parser.add_argument("--prefix", default="mvsa-single", help="source prefix: SOURCE = PREFIX:<id>")
    parser.add_argument("--labels", action="store_true", help="save each row's label as --annotator's label")
    parser.add_argument("--annotator", default=None, help="whose labels they become (with --labels)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.labels and not args.annotator:
        parser.error("--labels needs --annotator NAME (whose labels they become)")
    engine = create_engine_from_url(args.db or default_db_url(args.data_dir))
    init_db(engine)
    chosen = args.splits or ("all" if args.labels else ",".join(DEFAULT_SPLITS))
    splits = None if chosen == "all" else [s for s in chosen.split(",") if s]
    try:
        counts = import_posts(create_sessionmaker(engine), read_posts_csv(args.csv), args.data_dir, args.images,
                              splits=splits, source_prefix=args.prefix,
                              labels_as=args.annotator if args.labels else None)
    except AnnotationError as e:
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
