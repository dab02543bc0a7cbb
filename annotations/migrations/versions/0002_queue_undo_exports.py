"""Queue columns and indexes, skip/undo in the history, prediction conflict, exports table.

- posts: latest_prediction_id, confidence, conflict, disputed (+ indexes the queue walks), back-filled.
- predictions: conflict (image-only vs text-only disagreement, filled by the app).
- annotations: kind ('label' | 'skip' | 'retract'); label becomes NULL for skip/retract rows;
  composite indexes for "latest row per (post, annotator)" replace the post_id index.
- exports: one row per snapshot written by annotations.export.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LABELS_SQL = "('negative', 'neutral', 'positive')"
KINDS_SQL = "('label', 'skip', 'retract')"


def _annotations_0001() -> sa.Table:
    """The 0001 table, given to batch mode so that SQLite keeps its CHECK constraints on rebuild."""
    return sa.Table(
        "annotations",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rationale", sa.JSON(), nullable=True),
        sa.Column("shown_prediction_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"label IN {LABELS_SQL}", name=op.f("ck_annotations_label")),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_annotations_post_id_posts"),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name="fk_annotations_annotator_id_annotators"),
        sa.ForeignKeyConstraint(
            ["shown_prediction_id"], ["predictions.id"], name="fk_annotations_shown_prediction_id_predictions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
        sa.Index("ix_annotations_post_id", "post_id"),
    )


def _upgrade_posts() -> None:
    with op.batch_alter_table("posts") as b:
        b.add_column(sa.Column("latest_prediction_id", sa.Integer(), nullable=True))
        b.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        b.add_column(sa.Column("conflict", sa.Float(), nullable=True))
        b.add_column(sa.Column("disputed", sa.Integer(), nullable=True))
    op.create_index("ix_posts_disputed", "posts", ["disputed"])
    op.create_index("ix_posts_confidence", "posts", ["confidence", "id"])
    op.create_index("ix_posts_conflict", "posts", ["conflict", "id"])
    greatest = "max" if op.get_bind().dialect.name == "sqlite" else "greatest"
    op.execute(
        "UPDATE posts SET latest_prediction_id = (SELECT max(pr.id) FROM predictions pr WHERE pr.post_id = posts.id)"
    )
    op.execute(
        f"UPDATE posts SET confidence = (SELECT {greatest}(pr.p_negative, pr.p_neutral, pr.p_positive) "
        "FROM predictions pr WHERE pr.id = posts.latest_prediction_id) WHERE latest_prediction_id IS NOT NULL"
    )
    op.execute(
        "UPDATE posts SET conflict = CASE "
        "WHEN (text_label = 'positive' AND image_label = 'negative') "
        "OR (text_label = 'negative' AND image_label = 'positive') THEN 1.0 "
        "WHEN text_label IS NOT NULL AND image_label IS NOT NULL THEN 0.0 END"
    )


# An annotation row `e` that is its annotator's label in force on the post (latest row per annotator).
_IN_FORCE = "NOT EXISTS (SELECT 1 FROM annotations l WHERE l.post_id = {e}.post_id " \
    "AND l.annotator_id = {e}.annotator_id AND l.id > {e}.id)"
_BACKFILL_DISPUTED = f"""
UPDATE posts SET disputed = (SELECT max(a.id) FROM annotations a WHERE a.post_id = posts.id)
WHERE EXISTS (
    SELECT 1 FROM annotations e
    WHERE e.post_id = posts.id AND e.kind = 'label' AND {_IN_FORCE.format(e="e")} AND (
        (SELECT pr.label FROM predictions pr WHERE pr.id = posts.latest_prediction_id) <> e.label
        OR EXISTS (SELECT 1 FROM annotations o WHERE o.post_id = e.post_id AND o.kind = 'label'
                   AND o.label <> e.label AND {_IN_FORCE.format(e="o")})))
"""


def upgrade() -> None:
    _upgrade_posts()
    with op.batch_alter_table("predictions") as b:
        b.add_column(sa.Column("conflict", sa.Float(), nullable=True))
    with op.batch_alter_table("annotations", copy_from=_annotations_0001()) as b:
        b.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="label"))
        b.alter_column("label", existing_type=sa.String(16), nullable=True)
        b.drop_constraint(op.f("ck_annotations_label"), type_="check")
        b.create_check_constraint(op.f("ck_annotations_label"), f"label IS NULL OR label IN {LABELS_SQL}")
        b.create_check_constraint(op.f("ck_annotations_kind"), f"kind IN {KINDS_SQL}")
        b.create_check_constraint(
            op.f("ck_annotations_label_iff_kind_label"),
            "(kind = 'label' AND label IS NOT NULL) OR (kind <> 'label' AND label IS NULL)",
        )
        b.drop_index("ix_annotations_post_id")
        b.create_index("ix_annotations_post_annotator", ["post_id", "annotator_id", "id"])
        b.create_index("ix_annotations_annotator", ["annotator_id", "id"])
    op.execute(_BACKFILL_DISPUTED)
    op.create_table(
        "exports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_exports"),
    )


def downgrade() -> None:
    op.drop_table("exports")
    # Skip and retract rows cannot be expressed in 0001; dropping them loses that history.
    op.execute("DELETE FROM annotations WHERE kind <> 'label'")
    with op.batch_alter_table("annotations") as b:
        b.drop_index("ix_annotations_annotator")
        b.drop_index("ix_annotations_post_annotator")
        b.drop_constraint(op.f("ck_annotations_label_iff_kind_label"), type_="check")
        b.drop_constraint(op.f("ck_annotations_kind"), type_="check")
        b.drop_constraint(op.f("ck_annotations_label"), type_="check")
        b.create_check_constraint(op.f("ck_annotations_label"), f"label IN {LABELS_SQL}")
        b.alter_column("label", existing_type=sa.String(16), nullable=False)
        b.drop_column("kind")
        b.create_index("ix_annotations_post_id", ["post_id"])
    with op.batch_alter_table("predictions") as b:
        b.drop_column("conflict")
    op.drop_index("ix_posts_conflict", table_name="posts")
    op.drop_index("ix_posts_confidence", table_name="posts")
    op.drop_index("ix_posts_disputed", table_name="posts")
    with op.batch_alter_table("posts") as b:
        b.drop_column("disputed")
        b.drop_column("conflict")
        b.drop_column("confidence")
        b.drop_column("latest_prediction_id")
