"""The annotation queue: which post an annotator should see next, and how far they are.

Every strategy skips posts the annotator has a label or skip in force on (an undo puts the post
back) and posts set aside (annotations.setaside). Each is one indexed SQL query, so it stays fast
with 100,000+ posts:

- least_confident -- lowest top probability of the post's latest prediction first (walks
                     ix_posts_confidence); posts with no prediction yet come after, oldest first.
- disagreement    -- posts where some annotator's current label differs from the model's latest
                     prediction, or from another annotator's current label, and that no reviewer
                     has adjudicated yet (their label is final, more votes would not change it);
                     most recently active dispute first (posts.disputed, kept up to date by the
                     store's writes).
- conflict        -- posts whose text and image point opposite ways: the source's per-modality
                     labels (MVSA's positive vs negative) or the `conflict` score the app stored
                     with the latest prediction; highest conflict first.
- unseen          -- every post the annotator has no verdict on, oldest first.
- random          -- a random such post (uniform over ids; gaps in ids slightly favour the post
                     after a gap).

A picked post whose image file is missing is set aside (logged) and the queue picks again, at most
MAX_SET_ASIDE times per call.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from annotations.content import IMAGE_MISSING, image_available
from annotations.db import default_data_dir
from annotations.errors import AnnotationError
from annotations.images import image_relpath
from annotations.models import Adjudication, Annotation, Post
from annotations.queries import is_latest, open_for
from annotations.setaside import set_aside_after_transaction
from annotations.store import annotator_id, get_post

log = logging.getLogger(__name__)

MAX_SET_ASIDE = 20  # missing images skipped in one call before giving up with an error

Where = list[ColumnElement[bool]]
Picker = Callable[[Session, Where, random.Random], Optional[int]]


def _least_confident(session: Session, where: Where, rng: random.Random) -> Optional[int]:
    predicted = select(Post.id).where(Post.confidence.is_not(None), *where).order_by(Post.confidence, Post.id).limit(1)
    found = session.scalar(predicted)
    if found is not None:
        return found
    unpredicted = select(Post.id).where(Post.confidence.is_(None), *where).order_by(Post.id).limit(1)
    return session.scalar(unpredicted)


def _disagreement(session: Session, where: Where, rng: random.Random) -> Optional[int]:
    # posts.disputed is kept by the store on every label, undo and prediction; walks ix_posts_disputed.
    adjudicated = exists().where(Adjudication.post_id == Post.id)
    stmt = (select(Post.id).where(Post.disputed.is_not(None), ~adjudicated, *where)
            .order_by(Post.disputed.desc()).limit(1))
    return session.scalar(stmt)


def _conflict(session: Session, where: Where, rng: random.Random) -> Optional[int]:
    # Walks ix_posts_conflict (conflict, id) backwards.
    stmt = select(Post.id).where(Post.conflict > 0, *where).order_by(Post.conflict.desc(), Post.id.desc()).limit(1)
    return session.scalar(stmt)


def _unseen(session: Session, where: Where, rng: random.Random) -> Optional[int]:
    return session.scalar(select(Post.id).where(*where).order_by(Post.id).limit(1))


def _random(session: Session, where: Where, rng: random.Random) -> Optional[int]:
    # A random pivot id and the first open post at or after it (wrapping around): two index
    # walks instead of ORDER BY random(), which would sort every post.
    # Two statements: SQLite answers a lone min() or max() from the index, but not both at once.
    lo = session.scalar(select(func.min(Post.id)))
    hi = session.scalar(select(func.max(Post.id)))
    if lo is None or hi is None:
        return None
    pivot = rng.randint(lo, hi)
    base = select(Post.id).where(*where).limit(1)
    found = session.scalar(base.where(Post.id >= pivot).order_by(Post.id))
    if found is None:
        found = session.scalar(base.where(Post.id < pivot).order_by(Post.id.desc()))
    return found


STRATEGIES: dict[str, Picker] = {
    "least_confident": _least_confident,
    "disagreement": _disagreement,
    "conflict": _conflict,
    "unseen": _unseen,
    "random": _random,
}


def _where(aid: Optional[int], passed: Collection[int]) -> Where:
    """Open for the annotator, not set aside, and not one of the posts this call already passed over."""
    where = [open_for(aid), Post.set_aside.is_(None)]
    if passed:
        where.append(Post.id.not_in(list(passed)))
    return where


def next_in_queue(
    session: Session,
    annotator: str,
    strategy: str = "least_confident",
    *,
    data_dir: Optional[Union[str, Path]] = None,
    rng: Optional[random.Random] = None,
    exclude: Collection[int] = (),
) -> Optional[dict[str, Any]]:
    """The next post for `annotator` under `strategy`, as get_post()'s dict plus 'strategy';
    None when the queue is empty. Unknown strategy -> AnnotationError listing STRATEGIES.

    `exclude`: post ids not to pick (the app prefetches the post after the one on screen, which is
    still open until it is labelled).

    A post whose image file is missing under `<data_dir>/images/` is set aside (in a transaction of
    its own, once this session's transaction ends) and the next one is picked; after MAX_SET_ASIDE
    such posts in one call an AnnotationError says that the data directory looks wrong.
    """
    if strategy not in STRATEGIES:
        raise AnnotationError(f"Unknown queue strategy {strategy!r}; choose from {list(STRATEGIES)}")
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    aid = annotator_id(session, annotator)  # None: a new annotator has seen nothing yet
    rng = rng or random.Random()
    passed: list[int] = []
    excluded = [int(i) for i in exclude]
    while len(passed) <= MAX_SET_ASIDE:
        post_id = STRATEGIES[strategy](session, _where(aid, passed + excluded), rng)
        if post_id is None:
            log.debug("queue %s is empty for %s", strategy, annotator)
            return None
        post = session.get(Post, post_id)
        assert post is not None
        if image_available(post, root):
            return {**get_post(session, post_id, root), "strategy": strategy}
        log.warning("post #%d set aside: image file missing (%s)", post_id,
                    root / image_relpath(post.image_sha256 or "", post.image_ext or ""))
        set_aside_after_transaction(session, post, IMAGE_MISSING, root)
        passed.append(post_id)
    raise AnnotationError(
        f"{len(passed)} posts in a row have no image file under {root / 'images'}; they are set aside. "
        "Is the data directory (MMSA_DATA_DIR) right? recheck_set_aside() brings them back once the files are there."
    )


def is_open(session: Session, annotator: str, post_id: int) -> bool:
    """True when `post_id` is still in `annotator`'s queues: it exists, is not set aside, and they have no
    label or skip in force on it (what the app checks before showing a post it prepared earlier)."""
    aid = annotator_id(session, annotator)
    found = session.scalar(select(Post.id).where(Post.id == post_id, *_where(aid, [])))
    return found is not None


def progress(session: Session, annotator: str) -> dict[str, int]:
    """How far `annotator` is, over the posts not set aside (done + skipped + remaining == total).

    done: their labels in force; skipped: their skips in force; remaining: posts they have no
    verdict on (open in their queue); total: posts not set aside.
    """
    total = session.scalar(select(func.count()).select_from(Post).where(Post.set_aside.is_(None))) or 0
    aid = annotator_id(session, annotator)
    counts: dict[str, int] = {}
    if aid is not None:
        counts = dict(session.execute(  # type: ignore[arg-type]
            select(Annotation.kind, func.count())
            .join(Post, Post.id == Annotation.post_id)
            .where(Annotation.annotator_id == aid, Annotation.kind != "retract", Post.set_aside.is_(None),
                   is_latest(Annotation))
            .group_by(Annotation.kind)
        ).all())
    done, skipped = counts.get("label", 0), counts.get("skip", 0)
    return {"done": done, "skipped": skipped, "remaining": total - done - skipped, "total": total}
