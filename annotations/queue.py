"""The annotation queue: which post an annotator should see next.

Every strategy skips posts the annotator has a label or skip in force on (an undo puts the post
back). Each is one indexed SQL query, so it stays fast with 100,000+ posts:

- least_confident -- lowest top probability of the post's latest prediction first (walks
                     ix_posts_confidence); posts with no prediction yet come after, oldest first.
- disagreement    -- posts where some annotator's current label differs from the model's latest
                     prediction, or from another annotator's current label; most recently active
                     dispute first (posts.disputed, kept up to date by the store's writes).
- conflict        -- posts whose text and image point opposite ways: the source's per-modality
                     labels (MVSA's positive vs negative) or the `conflict` score the app stored
                     with the latest prediction; highest conflict first.
- unseen          -- every post the annotator has no verdict on, oldest first.
- random          -- a random such post (uniform over ids; gaps in ids slightly favour the post
                     after a gap).
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotations.errors import AnnotationError
from annotations.models import Post
from annotations.queries import open_for
from annotations.store import annotator_id, get_post

log = logging.getLogger(__name__)

Picker = Callable[[Session, Optional[int], random.Random], Optional[int]]


def _least_confident(session: Session, aid: Optional[int], rng: random.Random) -> Optional[int]:
    open_ = open_for(aid)
    predicted = (
        select(Post.id).where(Post.confidence.is_not(None), open_).order_by(Post.confidence, Post.id).limit(1)
    )
    found = session.scalar(predicted)
    if found is not None:
        return found
    unpredicted = select(Post.id).where(Post.confidence.is_(None), open_).order_by(Post.id).limit(1)
    return session.scalar(unpredicted)


def _disagreement(session: Session, aid: Optional[int], rng: random.Random) -> Optional[int]:
    # posts.disputed is kept by the store on every label, undo and prediction; walks ix_posts_disputed.
    stmt = select(Post.id).where(Post.disputed.is_not(None), open_for(aid)).order_by(Post.disputed.desc()).limit(1)
    return session.scalar(stmt)


def _conflict(session: Session, aid: Optional[int], rng: random.Random) -> Optional[int]:
    # Walks ix_posts_conflict (conflict, id) backwards.
    stmt = (
        select(Post.id)
        .where(Post.conflict > 0, open_for(aid))
        .order_by(Post.conflict.desc(), Post.id.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def _unseen(session: Session, aid: Optional[int], rng: random.Random) -> Optional[int]:
    return session.scalar(select(Post.id).where(open_for(aid)).order_by(Post.id).limit(1))


def _random(session: Session, aid: Optional[int], rng: random.Random) -> Optional[int]:
    # A random pivot id and the first open post at or after it (wrapping around): two index
    # walks instead of ORDER BY random(), which would sort every post.
    # Two statements: SQLite answers a lone min() or max() from the index, but not both at once.
    lo = session.scalar(select(func.min(Post.id)))
    hi = session.scalar(select(func.max(Post.id)))
    if lo is None or hi is None:
        return None
    pivot = rng.randint(lo, hi)
    base = select(Post.id).where(open_for(aid)).limit(1)
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


def next_in_queue(
    session: Session,
    annotator: str,
    strategy: str = "least_confident",
    *,
    data_dir: Optional[Union[str, Path]] = None,
    rng: Optional[random.Random] = None,
) -> Optional[dict[str, Any]]:
    """The next post for `annotator` under `strategy`, as get_post()'s dict plus 'strategy';
    None when the queue is empty. Unknown strategy -> AnnotationError listing STRATEGIES."""
    if strategy not in STRATEGIES:
        raise AnnotationError(f"Unknown queue strategy {strategy!r}; choose from {list(STRATEGIES)}")
    aid = annotator_id(session, annotator)  # None: a new annotator has seen nothing yet
    post_id = STRATEGIES[strategy](session, aid, rng or random.Random())
    if post_id is None:
        log.debug("queue %s is empty for %s", strategy, annotator)
        return None
    return {**get_post(session, post_id, data_dir), "strategy": strategy}
