"""One post per content, adjudications, posts set aside.

- posts.content_sha256: sha256 over the image's sha256 and the stripped, NFC text; back-filled, then
  NOT NULL under a unique index. Existing duplicates are merged first: the oldest post (lowest id)
  is kept, the others' annotations and predictions are moved onto it, its queue columns
  (latest_prediction_id, confidence, conflict, disputed) are recomputed, and the others are deleted.
  Nothing in `annotations` is lost: an annotator who labelled two copies has both rows on the kept
  post, and the later one is in force (as for any change of mind). When the kept post is an
  `upload` and a copy came from a data set (e.g. `mvsa-single:37`), the kept post takes that
  source and its per-modality labels, so training still links it to the data set row.
- posts.set_aside, posts.set_aside_at: why and when a post left every queue (e.g. its image file is
  missing); NULL for posts in the queues.
- adjudications: a reviewer's final label for a post (append-only; the latest row per post counts).

Downgrade drops the new table, columns and index; merged posts stay merged.

Self-contained: it imports nothing from the annotations package (frozen copies below).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""
from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections import defaultdict
from types import SimpleNamespace
from typing import Any, Optional, Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger(__name__)

LABELS_SQL = "('negative', 'neutral', 'positive')"
NOT_UPLOAD = sa.text("source <> 'upload'")
CHUNK = 500  # ids per IN list


def _content_sha256(image_sha256: Optional[str], text: str) -> str:
    """Frozen copy of annotations.content.content_sha256 (a test checks that they agree)."""
    normalized = unicodedata.normalize("NFC", text.strip())
    return hashlib.sha256(f"{image_sha256 or ''}\n{normalized}".encode("utf-8")).hexdigest()


def _conflict_pair(text_label: Optional[str], image_label: Optional[str]) -> Optional[float]:
    if text_label is None or image_label is None:
        return None
    return 1.0 if {text_label, image_label} == {"positive", "negative"} else 0.0


def _posts_table(with_0003_columns: bool) -> sa.Table:
    """posts as revision 0002 left it (+ the columns 0003 adds), for SQLite batch rebuilds: reflection
    would lose the CHECK constraints and the partial unique index on source."""
    extra = [
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("set_aside", sa.String(200), nullable=True),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True),
    ] if with_0003_columns else []
    return sa.Table(
        "posts",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("image_ext", sa.String(8), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("text_label", sa.String(16), nullable=True),
        sa.Column("image_label", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest_prediction_id", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("conflict", sa.Float(), nullable=True),
        sa.Column("disputed", sa.Integer(), nullable=True),
        *extra,
        sa.CheckConstraint(f"text_label IS NULL OR text_label IN {LABELS_SQL}", name="ck_posts_text_label"),
        sa.CheckConstraint(f"image_label IS NULL OR image_label IN {LABELS_SQL}", name="ck_posts_image_label"),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
        sa.Index("ix_posts_image_sha256", "image_sha256"),
        sa.Index("uq_posts_source", "source", unique=True, sqlite_where=NOT_UPLOAD, postgresql_where=NOT_UPLOAD),
        sa.Index("ix_posts_disputed", "disputed"),
        sa.Index("ix_posts_confidence", "confidence", "id"),
        sa.Index("ix_posts_conflict", "conflict", "id"),
    )


# Lightweight tables for the data steps (no metadata: they only build statements).
POSTS = sa.table(
    "posts", *(sa.column(c) for c in ("id", "image_sha256", "text", "source", "text_label", "image_label",
                                      "latest_prediction_id", "confidence", "conflict", "disputed",
                                      "content_sha256")),
)
PREDICTIONS = sa.table("predictions", *(sa.column(c) for c in ("id", "post_id", "label", "p_negative",
                                                                "p_neutral", "p_positive", "conflict")))
ANNOTATIONS = sa.table("annotations", *(sa.column(c) for c in ("id", "post_id", "annotator_id", "kind", "label")))


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


def _queue_columns(conn: sa.Connection, post: Any) -> dict[str, Any]:
    """The kept post's denormalised queue columns, computed as annotations.store keeps them."""
    pred = conn.execute(
        sa.select(PREDICTIONS).where(PREDICTIONS.c.post_id == post.id).order_by(PREDICTIONS.c.id.desc()).limit(1)
    ).first()
    known = [c for c in (_conflict_pair(post.text_label, post.image_label), pred.conflict if pred else None)
             if c is not None]
    rows = conn.execute(
        sa.select(ANNOTATIONS.c.id, ANNOTATIONS.c.annotator_id, ANNOTATIONS.c.kind, ANNOTATIONS.c.label)
        .where(ANNOTATIONS.c.post_id == post.id).order_by(ANNOTATIONS.c.id)
    ).all()
    latest = {r.annotator_id: r for r in rows}  # ordered by id: the last row per annotator wins
    labels = {r.label for r in latest.values() if r.kind == "label"}
    disputed = bool(labels) and len(labels | ({pred.label} if pred else set())) > 1
    return {
        "latest_prediction_id": pred.id if pred else None,
        "confidence": max(pred.p_negative, pred.p_neutral, pred.p_positive) if pred else None,
        "conflict": max(known) if known else None,
        "disputed": rows[-1].id if disputed else None,
    }


def _merge(conn: sa.Connection, group: list[Any]) -> None:
    """Fold the posts of one content group into the oldest (group[0])."""
    keep, dups = group[0], [p.id for p in group[1:]]
    conn.execute(sa.update(ANNOTATIONS).where(ANNOTATIONS.c.post_id.in_(dups)).values(post_id=keep.id))
    conn.execute(sa.update(PREDICTIONS).where(PREDICTIONS.c.post_id.in_(dups)).values(post_id=keep.id))
    conn.execute(sa.delete(POSTS).where(POSTS.c.id.in_(dups)))
    named = next((p for p in group[1:] if p.source != "upload"), None)
    values: dict[str, Any] = {}
    if keep.source == "upload" and named is not None:  # deleted above, so the source is free again
        values = {"source": named.source, "text_label": keep.text_label or named.text_label,
                  "image_label": keep.image_label or named.image_label}
        keep = SimpleNamespace(**{**vars(keep), **values})
    lost = [p.source for p in group[1:] if p.source != "upload" and p.source != keep.source]
    if lost:
        log.warning("post #%d keeps source %s; merged copies came from %s", keep.id, keep.source, lost)
    values.update(_queue_columns(conn, keep))
    conn.execute(sa.update(POSTS).where(POSTS.c.id == keep.id).values(**values))


def _backfill_and_merge() -> None:
    conn = op.get_bind()
    cols = (POSTS.c.id, POSTS.c.image_sha256, POSTS.c.text, POSTS.c.source, POSTS.c.text_label,
            POSTS.c.image_label)
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(sa.select(*cols).order_by(POSTS.c.id)):
        post = SimpleNamespace(**row._asdict())
        groups[_content_sha256(post.image_sha256, post.text)].append(post)
    merged = [g for g in groups.values() if len(g) > 1]
    for group in merged:
        _merge(conn, group)
    fill = sa.update(POSTS).where(POSTS.c.id == sa.bindparam("b_id")).values(content_sha256=sa.bindparam("b_sha"))
    items = [{"b_id": g[0].id, "b_sha": sha} for sha, g in groups.items()]
    for start in range(0, len(items), CHUNK):
        conn.execute(fill, items[start:start + CHUNK])
    if merged:
        log.warning("merged %d duplicate posts into %d", sum(len(g) - 1 for g in merged), len(merged))


def upgrade() -> None:
    with op.batch_alter_table("posts") as b:  # plain ALTER TABLE ADD COLUMN, also on SQLite
        b.add_column(sa.Column("content_sha256", sa.String(64), nullable=True))
        b.add_column(sa.Column("set_aside", sa.String(200), nullable=True))
        b.add_column(sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True))
    _backfill_and_merge()
    with op.batch_alter_table("posts", copy_from=_posts_table(with_0003_columns=True)) as b:
        b.alter_column("content_sha256", existing_type=sa.String(64), nullable=False)
    op.create_index("uq_posts_content_sha256", "posts", ["content_sha256"], unique=True)
    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"label IN {LABELS_SQL}", name=op.f("ck_adjudications_label")),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_adjudications_post_id_posts"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["annotators.id"], name="fk_adjudications_reviewer_id_annotators"),
        sa.PrimaryKeyConstraint("id", name="pk_adjudications"),
    )
    op.create_index("ix_adjudications_post_id", "adjudications", ["post_id", "id"])


def downgrade() -> None:
    # Adjudications and set-aside marks cannot be expressed in 0002; merged posts stay merged.
    op.drop_index("ix_adjudications_post_id", table_name="adjudications")
    op.drop_table("adjudications")
    op.drop_index("uq_posts_content_sha256", table_name="posts")
    with op.batch_alter_table("posts", copy_from=_posts_table(with_0003_columns=True)) as b:
        b.drop_column("set_aside_at")
        b.drop_column("set_aside")
        b.drop_column("content_sha256")
