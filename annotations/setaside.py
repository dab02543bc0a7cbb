"""Posts set aside: out of every queue until cleared (e.g. their image file is missing).

`posts.set_aside` holds the reason and `posts.set_aside_at` the time; NULL means the post is in the
queues. The queue sets a post aside when `content.image_available` says its image file is gone,
and moves on; `add_post` of the same content brings the file back and clears the mark;
`recheck_set_aside` clears every post whose image is back (after restoring a backup, say).

Why the queue's mark is written after the caller's transaction: on SQLite every transaction takes
the write lock (BEGIN IMMEDIATE, see annotations.db), so a second transaction opened while the
caller's read session is still open would wait for it until the busy timeout. The mark is
therefore queued on the session and written in its own short transaction as soon as the caller's
transaction ends (commit, rollback or close), whether or not the caller writes anything.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, SessionTransaction

from annotations.content import IMAGE_MISSING, image_available
from annotations.db import default_data_dir
from annotations.errors import AnnotationError
from annotations.models import Post, utcnow
from annotations.store import _require_post

log = logging.getLogger(__name__)

REASON_MAX = 200  # posts.set_aside is a String(200)
_PENDING = "annotations.set_aside.pending"  # session.info key: {post_id: (reason, data_dir)}


def _check_reason(reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_MAX:
        raise AnnotationError(f"A set-aside reason must be a non-empty string of at most {REASON_MAX} characters")
    return reason.strip()


def set_aside(session: Session, post_id: int, reason: str) -> bool:
    """Take a post out of every queue, in the caller's transaction; False if it was set aside already."""
    post = _require_post(session, post_id, lock=True)
    if post.set_aside is not None:
        return False
    post.set_aside, post.set_aside_at = _check_reason(reason), utcnow()
    session.flush()
    log.info("post #%d set aside: %s", post.id, post.set_aside)
    return True


def clear_set_aside(session: Session, post_id: int) -> bool:
    """Put a set-aside post back in the queues; False if it was not set aside."""
    post = _require_post(session, post_id, lock=True)
    if post.set_aside is None:
        return False
    post.set_aside = post.set_aside_at = None
    session.flush()
    log.info("post #%d is back in the queues", post.id)
    return True


def recheck_set_aside(session: Session, data_dir: Optional[Union[str, Path]] = None) -> list[int]:
    """Clear every post set aside for a missing image whose file is there again; returns their ids."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    back = [p for p in session.scalars(select(Post).where(Post.set_aside == IMAGE_MISSING).order_by(Post.id))
            if image_available(p, root)]
    for post in back:
        post.set_aside = post.set_aside_at = None
    session.flush()
    if back:
        log.info("%d set-aside posts have their image again", len(back))
    return [p.id for p in back]


def list_set_aside(session: Session, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Set-aside posts, most recent first: post_id, text, source, reason, set_aside_at (ISO 8601)."""
    if not isinstance(limit, int) or limit < 1 or not isinstance(offset, int) or offset < 0:
        raise AnnotationError(f"limit must be a positive and offset a non-negative integer, got {limit!r}, {offset!r}")
    stmt = (select(Post).where(Post.set_aside.is_not(None))
            .order_by(Post.set_aside_at.desc(), Post.id.desc()).limit(limit).offset(offset))
    return [{"post_id": p.id, "text": p.text, "source": p.source, "reason": p.set_aside,
             "set_aside_at": p.set_aside_at.isoformat() if p.set_aside_at else None}
            for p in session.scalars(stmt)]


def count_set_aside(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Post).where(Post.set_aside.is_not(None))) or 0


def set_aside_after_transaction(session: Session, post: Post, reason: str, data_dir: Path) -> None:
    """Mark `post` set aside in a short transaction of its own once the caller's transaction ends."""
    pending: dict[int, tuple[str, Path]] = session.info.setdefault(_PENDING, {})
    if not event.contains(session, "after_transaction_end", _write_pending):
        event.listen(session, "after_transaction_end", _write_pending)
    pending[post.id] = (reason, data_dir)


def _write_pending(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or not session.info.get(_PENDING):
        return  # a savepoint or an inner transaction ended: wait for the outermost one
    pending: dict[int, tuple[str, Path]] = session.info.pop(_PENDING)
    try:
        with Session(session.get_bind()) as own, own.begin():
            for post_id, (reason, data_dir) in pending.items():
                post = own.get(Post, post_id)
                if post is None or post.set_aside is not None or image_available(post, data_dir):
                    continue  # gone, already marked, or the image came back meanwhile
                own.execute(update(Post).where(Post.id == post_id, Post.set_aside.is_(None))
                            .values(set_aside=reason, set_aside_at=utcnow())
                            .execution_options(synchronize_session=False))
    except Exception:
        # The queue has already moved past these posts; the next call finds them again and retries.
        log.exception("could not mark posts %s as set aside", sorted(pending))
