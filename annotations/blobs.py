"""Image files bound to the database: written with the transaction, kept in it, restored and repaired.

- `save_image` writes the content-addressed file, removes it again when the transaction does not commit
  (a failed save leaves no orphan file), and keeps the bytes in `image_blobs` when asked.
- `ensure_image_file` / `restore_images` rewrite files that a wiped data folder lost, from `image_blobs`.
- `repair_images` renames or removes what an older version stored under a client's extension
  (`<sha>.html` holding a PNG): only `.jpg`, `.png`, `.gif` and `.webp` files stay under `images/`.

Keeping bytes in the database is on by default for every database but SQLite (whose file lives in the
data folder anyway); `MMSA_IMAGES_IN_DB=1` or `0` decides instead.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotations.errors import AnnotationError
from annotations.images import IMAGE_EXTS, check_image_bytes, image_relpath, store_image
from annotations.models import ImageBlob, Post

log = logging.getLogger(__name__)

ENV_IMAGES_IN_DB = "MMSA_IMAGES_IN_DB"
_NEW_FILES = "mmsa_new_image_files"  # session.info key: files this transaction created


def images_in_db(session: Session) -> bool:
    """Whether uploaded image bytes go into the database: `$MMSA_IMAGES_IN_DB` (1/0), else not on SQLite."""
    flag = os.environ.get(ENV_IMAGES_IN_DB, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    bind = session.get_bind()
    return bind.dialect.name != "sqlite"


def _track_new_file(session: Session, path: Path) -> None:
    """Remove `path` when the session's outermost transaction ends without a commit."""
    files: list[Path] = session.info.setdefault(_NEW_FILES, [])
    if not files and not event.contains(session, "after_transaction_end", _drop_uncommitted):
        event.listen(session, "after_commit", _forget_committed)
        event.listen(session, "after_transaction_end", _drop_uncommitted)
    files.append(path)


def _forget_committed(session: Session) -> None:
    session.info.pop(_NEW_FILES, None)


def _drop_uncommitted(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:  # a savepoint or an inner transaction: the outer one decides
        return
    for path in session.info.pop(_NEW_FILES, []):  # still here: the transaction rolled back
        Path(path).unlink(missing_ok=True)
        log.info("removed %s: its transaction did not commit", path)


def save_image(session: Session, data_dir: Union[str, Path], data: bytes, ext: str,
               keep_blob: Optional[bool] = None) -> str:
    """Store checked image bytes for the session's transaction; returns the sha256.

    The file is removed again if the transaction rolls back. `keep_blob` (default `images_in_db`):
    also keep the bytes in `image_blobs`, written in the same transaction.
    """
    sha, created = store_image(data_dir, data, ext)
    if created is not None:
        _track_new_file(session, created)
    if keep_blob if keep_blob is not None else images_in_db(session):
        if session.get(ImageBlob, sha) is None:
            try:
                with session.begin_nested():  # a concurrent upload of the same bytes may win the race
                    session.add(ImageBlob(sha256=sha, ext=ext, data=data))
            except IntegrityError:
                log.debug("image %s was stored by a concurrent transaction", sha)
    return sha


def ensure_image_file(session: Session, sha: str, ext: str, data_dir: Union[str, Path]) -> Optional[Path]:
    """The image's file, rewritten from `image_blobs` when missing; None when it is missing and not kept."""
    path = Path(data_dir) / image_relpath(sha, ext)
    if path.is_file():
        return path
    blob = session.get(ImageBlob, sha)
    if blob is None:
        return None
    if hashlib.sha256(blob.data).hexdigest() != sha:
        raise AnnotationError(f"Image {sha} in the database does not match its hash: the database is corrupt")
    store_image(data_dir, blob.data, blob.ext)
    log.info("restored image %s from the database", path.name)
    return path


def restore_images(session: Session, data_dir: Union[str, Path]) -> int:
    """Rewrite every post image whose file is missing but whose bytes are in the database; returns how many."""
    restored = 0
    rows = session.execute(select(Post.image_sha256, Post.image_ext).where(Post.image_sha256.is_not(None))
                           .distinct())
    for sha, ext in rows:
        path = Path(data_dir) / image_relpath(sha, ext or "")
        if not path.is_file() and ensure_image_file(session, sha, ext or "", data_dir) is not None:
            restored += 1
    return restored


def _repair_file(session: Session, data_dir: Path, path: Path, sha: str) -> str:
    """A file under a bad extension: re-store it under its sniffed one and point its posts there."""
    posts = list(session.scalars(select(Post).where(Post.image_sha256 == sha)))
    try:
        data = path.read_bytes()
        ext = check_image_bytes(data)
    except (OSError, AnnotationError) as e:
        for post in posts:  # not an image we serve: the posts keep their text, lose the file
            post.image_sha256 = post.image_ext = None
        path.unlink(missing_ok=True)
        log.warning("removed %s (not a JPEG/PNG/GIF/WebP: %s); %d post(s) lose their image", path.name, e, len(posts))
        return "removed"
    new_sha, _ = store_image(data_dir, data, ext)  # same bytes: same sha, new extension
    for post in posts:
        post.image_sha256, post.image_ext = new_sha, ext
    path.unlink(missing_ok=True)
    log.warning("renamed %s to .%s (%d post(s))", path.name, ext, len(posts))
    return "renamed"


def repair_images(session: Session, data_dir: Union[str, Path]) -> dict[str, int]:
    """Make `<data_dir>/images/` hold only `.jpg/.png/.gif/.webp` files with the matching content.

    Files under any other extension (what older versions stored from a client's file name, and the
    orphans of failed saves) are renamed when their bytes are one of the four formats, else removed
    (their posts keep the text). Posts whose `image_ext` is not one of the four are fixed the same way.
    Returns counts {"renamed": n, "removed": n}. Call it at start-up, inside a transaction.
    """
    root = Path(data_dir)
    counts = {"renamed": 0, "removed": 0}
    images = root / "images"
    if images.is_dir():
        for path in sorted(p for p in images.rglob("*") if p.is_file()):
            if path.suffix.lstrip(".") in IMAGE_EXTS:
                continue
            if path.name.startswith(".tmp-"):  # a crashed write of an older version
                path.unlink(missing_ok=True)
                counts["removed"] += 1
            else:
                counts[_repair_file(session, root, path, path.stem)] += 1
    bad_rows = session.scalars(select(Post).where(Post.image_sha256.is_not(None), Post.image_ext.not_in(IMAGE_EXTS)))
    for post in list(bad_rows):  # rows whose file is gone already, or was repaired above
        if post.image_ext in IMAGE_EXTS:
            continue
        post.image_sha256 = post.image_ext = None
        counts["removed"] += 1
    session.flush()
    return counts
