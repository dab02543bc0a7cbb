"""Review of disputed posts: every annotator's label side by side, majorities, and adjudication.

A post is *disputed* when its labels in force disagree with each other or with the model's latest
prediction (posts.disputed, kept by the store). A reviewer settles it with `adjudicate`, which
appends a row to `adjudications`; the latest row per post is in force, and its label is the post's
final label:

    final_label = adjudicated label, else the majority of the labels in force, else None (a tie)

Role checks belong to the app: the store takes the reviewer's name as a plain value.

    with sessions() as s:
        items = disputed_posts(s, limit=20)                  # pending disputes, newest first
    with sessions.begin() as s:
        adjudicate(s, items[0]["post_id"], "rita", "negative", note="sarcasm")
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from annotations.errors import AnnotationError
from annotations.labels import LABELS, check_annotator_name, check_label
from annotations.models import Adjudication, Annotation, Post
from annotations.queries import adjudications_in_force_stmt, labels_in_force_stmt
from annotations.store import _require_post, annotator_id, get_post

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN list


def majority(labels: Iterable[str]) -> tuple[Optional[str], bool]:
    """(majority label, tie) of one post's votes: (label, False) for a clear winner, (None, True) when
    two labels share the top count, (None, False) without votes."""
    counts = Counter(labels)
    if not counts:
        return None, False
    top = max(counts.values())
    leaders = [label for label, n in counts.items() if n == top]
    return (leaders[0], False) if len(leaders) == 1 else (None, True)


def adjudicate(session: Session, post_id: int, reviewer: str, label: str, note: Optional[str] = None) -> int:
    """Record `reviewer`'s final label for a post (a later call supersedes it); returns the row id.

    Any post may be adjudicated, disputed or not. The reviewer is an annotator name (created on
    first use); whether they may review is for the app to check.
    """
    check_label(label)
    name = check_annotator_name(reviewer)
    if note is not None and not isinstance(note, str):
        raise AnnotationError(f"Note must be a string, got {type(note).__name__}")
    post = _require_post(session, post_id, lock=True)
    row = Adjudication(post_id=post.id, reviewer_id=annotator_id(session, name, create=True), label=label, note=note)
    session.add(row)
    session.flush()
    log.info("post #%d adjudicated %s by %s", post.id, label, name)
    return row.id


def _adjudication_dict(row: Adjudication, reviewer: str) -> dict[str, Any]:
    return {"adjudication_id": row.id, "reviewer": reviewer, "label": row.label, "note": row.note,
            "adjudicated_at": row.created_at.isoformat(), "_at": row.created_at}


def post_verdicts(session: Session, post_ids: Optional[Sequence[int]] = None) -> dict[int, dict[str, Any]]:
    """Per post: labels in force (each annotator's label, note, time), votes, majority, tie, the
    adjudication in force and the final label. Posts with neither labels nor an adjudication are
    absent. `post_ids`: only these posts (None: every post)."""
    labels: dict[int, list[dict[str, Any]]] = defaultdict(list)
    adjudications: dict[int, dict[str, Any]] = {}
    chunks = [None] if post_ids is None else [list(post_ids[i:i + CHUNK]) for i in range(0, len(post_ids), CHUNK)]
    for chunk in chunks:
        lab_stmt, adj_stmt = labels_in_force_stmt(), adjudications_in_force_stmt()
        if chunk is not None:
            lab_stmt = lab_stmt.where(Annotation.post_id.in_(chunk))
            adj_stmt = adj_stmt.where(Adjudication.post_id.in_(chunk))
        for post_id, name, label, note, created_at, ann_id in session.execute(lab_stmt):
            labels[post_id].append({"annotator": name, "label": label, "note": note,
                                    "labelled_at": created_at.isoformat(), "annotation_id": ann_id, "_at": created_at})
        for row, reviewer in session.execute(adj_stmt):
            adjudications[row.post_id] = _adjudication_dict(row, reviewer)
    out = {}
    for post_id in sorted(set(labels) | set(adjudications)):
        rows = sorted(labels[post_id], key=lambda r: r["annotator"])
        top, tie = majority(r["label"] for r in rows)
        adj = adjudications.get(post_id)
        if adj is not None:  # labels given after the reviewer decided: the decision may need a second look
            at = adj.pop("_at")
            adj["outdated"] = any(r["_at"] > at for r in rows)
        for r in rows:
            del r["_at"]
        out[post_id] = {
            "labels": rows, "n_votes": len(rows),
            "votes": {lab: sum(r["label"] == lab for r in rows) for lab in LABELS},
            "majority": top, "tie": tie, "adjudication": adj, "adjudicated": adj["label"] if adj else None,
            "final_label": adj["label"] if adj else top,
        }
    return out


def _review_items(session: Session, post_ids: list[int], data_dir: Optional[Union[str, Path]]) -> list[dict[str, Any]]:
    verdicts = post_verdicts(session, post_ids)
    items = []
    for post_id in post_ids:
        post = get_post(session, post_id, data_dir)
        verdict = verdicts.get(post_id) or {
            "labels": [], "n_votes": 0, "votes": dict.fromkeys(LABELS, 0), "majority": None, "tie": False,
            "adjudication": None, "adjudicated": None, "final_label": None}
        model = post["prediction"]["label"] if post["prediction"] else None
        given = {r["label"] for r in verdict["labels"]}
        items.append({**post, **verdict, "annotators_disagree": len(given) > 1,
                      "model_disagrees": model is not None and bool(given - {model})})
    return items


def review_post(session: Session, post_id: int, data_dir: Optional[Union[str, Path]] = None) -> dict[str, Any]:
    """One post as the review view shows it: get_post()'s dict (text, image_path, prediction, ...)
    plus post_verdicts()'s fields and the flags annotators_disagree and model_disagrees."""
    return _review_items(session, [_require_post(session, post_id).id], data_dir)[0]


def disputed_posts(
    session: Session,
    limit: int = 50,
    offset: int = 0,
    include_adjudicated: bool = False,
    *,
    data_dir: Optional[Union[str, Path]] = None,
) -> list[dict[str, Any]]:
    """Disputed posts, most recently active dispute first, as review_post() dicts.

    Without `include_adjudicated`, only posts with no adjudication in force (the reviewer's to-do
    list); with it, adjudicated ones too (their `adjudication.outdated` is true when labels came in
    after the decision). Set-aside posts are listed too (`set_aside` says why).
    """
    if not isinstance(limit, int) or limit < 1 or not isinstance(offset, int) or offset < 0:
        raise AnnotationError(f"limit must be a positive and offset a non-negative integer, got {limit!r}, {offset!r}")
    stmt = select(Post.id).where(Post.disputed.is_not(None))
    if not include_adjudicated:
        stmt = stmt.where(~exists().where(Adjudication.post_id == Post.id))
    ids = list(session.scalars(stmt.order_by(Post.disputed.desc(), Post.id.desc()).limit(limit).offset(offset)))
    return _review_items(session, ids, data_dir)


def review_counts(session: Session) -> dict[str, int]:
    """{'disputed': disputed posts, 'pending': disputed and not adjudicated (disputed_posts()'s
    default list), 'adjudicated': posts with an adjudication in force, disputed or not}."""
    adjudicated = exists().where(Adjudication.post_id == Post.id)
    disputed = select(func.count()).select_from(Post).where(Post.disputed.is_not(None))
    return {
        "disputed": session.scalar(disputed) or 0,
        "pending": session.scalar(disputed.where(~adjudicated)) or 0,
        "adjudicated": session.scalar(select(func.count(func.distinct(Adjudication.post_id)))) or 0,
    }
