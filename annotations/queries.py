"""SQL building blocks shared by the store, the queue, the stats and the export.

The annotation history is append-only; an annotator's verdict on a post is their *latest* row for
that post (highest id): a `label` row is their current label, a `skip` row means they passed, and a
`retract` row (undo) means they have no verdict on it any more. Adjudications are append-only too:
the latest row per post is the reviewer's decision in force.
"""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, true
from sqlalchemy.orm import aliased

from annotations.models import Adjudication, Annotation, Annotator, Post


def is_latest(row: Any) -> ColumnElement[bool]:
    """True where `row` (Annotation or an alias of it) is the latest row for its (post, annotator)."""
    later = aliased(Annotation)
    return ~exists().where(
        later.post_id == row.post_id, later.annotator_id == row.annotator_id, later.id > row.id
    )


def effective_labels_stmt() -> Select[Any]:
    """(post_id, annotator name, label, annotation id) of every current label, one per (post, annotator)."""
    return (
        select(Annotation.post_id, Annotator.name, Annotation.label, Annotation.id)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .where(Annotation.kind == "label", is_latest(Annotation))
    )


def open_for(annotator_id: Optional[int], post_id: Any = Post.id) -> ColumnElement[bool]:
    """True where the annotator has no current label or skip on the post (so it may be queued).

    One index probe per post: the latest row for (post, annotator) on ix_annotations_post_annotator.
    """
    if annotator_id is None:
        return true()
    latest_kind = (
        select(Annotation.kind)
        .where(Annotation.post_id == post_id, Annotation.annotator_id == annotator_id)
        .order_by(Annotation.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(latest_kind, literal("retract")) == "retract"


def labels_in_force_stmt() -> Select[Any]:
    """(post_id, annotator name, label, note, created_at, annotation id) of every label in force."""
    return (
        select(Annotation.post_id, Annotator.name, Annotation.label, Annotation.note, Annotation.created_at,
               Annotation.id)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .where(Annotation.kind == "label", is_latest(Annotation))
    )


def adjudications_in_force_stmt() -> Select[Any]:
    """(Adjudication, reviewer name) of the latest adjudication per post."""
    later = aliased(Adjudication)
    return (
        select(Adjudication, Annotator.name)
        .join(Annotator, Annotator.id == Adjudication.reviewer_id)
        .where(~exists().where(later.post_id == Adjudication.post_id, later.id > Adjudication.id))
    )
