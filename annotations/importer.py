"""Import posts from a data set into the annotation queue (idempotent).

    python -m annotations.importer --csv /work/shared/data/mvsa-single/posts.csv \
        --images /work/shared/data/mvsa-single/images --splits unlabeled,val

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
from annotations.models import Post
from annotations.store import ensure_post

log = logging.getLogger(__name__)

DEFAULT_SPLITS = ("unlabeled", "val")


def read_posts_csv(path: Union[str, Path]) -> list[dict[str, str]]:
    """Rows of an MVSA-style posts.csv (`id,text,split,label,text_label,image_label`)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _add_batch(session: Session, batch: list[Mapping[str, str]], prefix: str, data_dir: Any,
               image_dir: Optional[Path]) -> int:
    sources = {f"{prefix}:{row['id']}": row for row in batch}
    existing = set(session.scalars(select(Post.source).where(Post.source.in_(list(sources)))))
    new = {source: row for source, row in sources.items() if source not in existing}
    images = {source: image_dir / f"{row['id']}.jpg" if image_dir is not None else None for source, row in new.items()}
    missing = [str(path) for path in images.values() if path is not None and not path.is_file()]
    if missing:  # checked up front so that a bad batch writes no image files either
        raise AnnotationError(f"Image file not found: {missing[0]} ({len(missing)} missing in this batch)")
    added = 0
    for source, row in new.items():
        _, created = ensure_post(
            session, row.get("text") or "", images[source], source, data_dir,
            text_label=row.get("text_label") or None, image_label=row.get("image_label") or None,
        )
        added += created
    return added


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
) -> dict[str, int]:
    """Add rows (dicts with id, text, split, text_label, image_label) as posts; idempotent.

    Only rows whose `split` is in `splits` are imported (None: all). Images are read from
    `<image_dir>/<id>.jpg` (None: text-only). One short transaction per batch, so an interrupted
    import keeps what it committed and a re-run completes it. Returns {'added', 'existing', 'filtered'};
    'existing' counts rows whose source or content was in the database already.
    """
    wanted = set(splits) if splits is not None else None
    counts = {"added": 0, "existing": 0, "filtered": 0}
    image_path = Path(image_dir) if image_dir is not None else None
    batch: list[Mapping[str, str]] = []

    def flush() -> None:
        with session_factory.begin() as session:
            added = _add_batch(session, batch, source_prefix, data_dir, image_path)
        counts["added"] += added
        counts["existing"] += len(batch) - added
        batch.clear()

    for row in tqdm(rows, desc="import posts", unit="post", disable=not progress):
        if "id" not in row:
            raise AnnotationError(f"Row without an 'id' column: {dict(row)!r}")
        if wanted is not None and row.get("split") not in wanted:
            counts["filtered"] += 1
            continue
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
    parser.add_argument("--splits", default=",".join(DEFAULT_SPLITS), help="comma-separated; 'all' for every row")
    parser.add_argument("--prefix", default="mvsa-single", help="source prefix: SOURCE = PREFIX:<id>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = create_engine_from_url(args.db or default_db_url(args.data_dir))
    init_db(engine)
    splits = None if args.splits == "all" else [s for s in args.splits.split(",") if s]
    counts = import_posts(create_sessionmaker(engine), read_posts_csv(args.csv), args.data_dir, args.images,
                          splits=splits, source_prefix=args.prefix)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
