"""Initial schema: posts, model versions, predictions, annotators, annotations.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Frozen copy of the label schema: a migration must not change when the code does.
LABELS_SQL = "('negative', 'neutral', 'positive')"
NOT_UPLOAD = sa.text("source <> 'upload'")


def _created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def _create_posts() -> None:
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("image_ext", sa.String(8), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("text_label", sa.String(16), nullable=True),
        sa.Column("image_label", sa.String(16), nullable=True),
        _created_at(),
        sa.CheckConstraint(f"text_label IS NULL OR text_label IN {LABELS_SQL}", name=op.f("ck_posts_text_label")),
        sa.CheckConstraint(f"image_label IS NULL OR image_label IN {LABELS_SQL}", name=op.f("ck_posts_image_label")),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
    )
    op.create_index("ix_posts_image_sha256", "posts", ["image_sha256"])
    op.create_index(
        "uq_posts_source", "posts", ["source"], unique=True, sqlite_where=NOT_UPLOAD, postgresql_where=NOT_UPLOAD
    )


def _create_model_versions() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("checkpoint_path", sa.Text(), nullable=False),
        sa.Column("checkpoint_sha256", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("trained_on_export_id", sa.String(64), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", name="uq_model_versions_name"),
    )
    is_default = sa.text("is_default")
    op.create_index(
        "uq_model_versions_default", "model_versions", ["is_default"], unique=True,
        sqlite_where=is_default, postgresql_where=is_default,
    )


def _create_predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("p_negative", sa.Float(), nullable=False),
        sa.Column("p_neutral", sa.Float(), nullable=False),
        sa.Column("p_positive", sa.Float(), nullable=False),
        _created_at(),
        sa.CheckConstraint(f"label IN {LABELS_SQL}", name=op.f("ck_predictions_label")),
        sa.CheckConstraint(
            "p_negative BETWEEN 0 AND 1 AND p_neutral BETWEEN 0 AND 1 AND p_positive BETWEEN 0 AND 1",
            name=op.f("ck_predictions_probs"),
        ),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_predictions_post_id_posts"),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_predictions_model_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_post_id", "predictions", ["post_id", "id"])


def _create_annotators_and_annotations() -> None:
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _created_at(),
        sa.CheckConstraint("length(trim(name)) > 0", name=op.f("ck_annotators_name_not_empty")),
        sa.PrimaryKeyConstraint("id", name="pk_annotators"),
        sa.UniqueConstraint("name", name="uq_annotators_name"),
    )
    # 0001 history: every row is a label (no skip/undo yet).
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rationale", sa.JSON(), nullable=True),
        sa.Column("shown_prediction_id", sa.Integer(), nullable=True),
        _created_at(),
        sa.CheckConstraint(f"label IN {LABELS_SQL}", name=op.f("ck_annotations_label")),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], name="fk_annotations_post_id_posts"),
        sa.ForeignKeyConstraint(["annotator_id"], ["annotators.id"], name="fk_annotations_annotator_id_annotators"),
        sa.ForeignKeyConstraint(
            ["shown_prediction_id"], ["predictions.id"], name="fk_annotations_shown_prediction_id_predictions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
    )
    op.create_index("ix_annotations_post_id", "annotations", ["post_id"])


def upgrade() -> None:
    _create_posts()
    _create_model_versions()
    _create_predictions()
    _create_annotators_and_annotations()


def downgrade() -> None:
    op.drop_table("annotations")
    op.drop_table("annotators")
    op.drop_table("predictions")
    op.drop_table("model_versions")
    op.drop_table("posts")
