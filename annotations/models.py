"""SQLAlchemy 2.0 typed ORM for the annotation store.

The schema itself is owned by the Alembic migrations in `annotations/migrations/versions/`; this
module mirrors the head revision (a test compares the two) and is what the store code queries.
ORM objects never leave `annotations/`: the store functions return plain dicts.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text as sql_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from annotations.labels import KINDS, LABELS

ROLES: tuple[str, ...] = ("annotator", "reviewer", "admin")  # each may do what the one before may, and more

# Explicit constraint names, so that migrations (and SQLite batch table rebuilds) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """The current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.timezone.utc)


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """`column IN ('a', 'b')` for check constraints (values are module constants, never user input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores UTC; always returns timezone-aware UTC datetimes (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass a timezone-aware UTC datetime")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Optional[dt.datetime], dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Post(Base):
    """A post to label: text and/or a content-addressed image under `<data_dir>/images/`.

    One post per content: `content_sha256` (annotations.content) over the image's sha256 and the
    stripped, NFC text is unique, so saving the same image and text again finds this post.
    """

    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    image_sha256: Mapped[Optional[str]] = mapped_column(String(64), index=True)  # None: text-only
    image_ext: Mapped[Optional[str]] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    # `upload` may repeat; any other source (e.g. `mvsa-single:37`) names one post (partial unique index).
    source: Mapped[str] = mapped_column(String(200))
    # Per-modality labels from the source data set, when it has them (MVSA does).
    text_label: Mapped[Optional[str]] = mapped_column(String(16))
    image_label: Mapped[Optional[str]] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Queue columns, denormalised from the latest prediction by record_prediction() so that the
    # queue can walk an index instead of scanning predictions. No FK on latest_prediction_id:
    # posts <-> predictions would be a cycle, which complicates SQLite table rebuilds.
    latest_prediction_id: Mapped[Optional[int]] = mapped_column(Integer)
    confidence: Mapped[Optional[float]] = mapped_column(Float)  # max prob of the latest prediction
    conflict: Mapped[Optional[float]] = mapped_column(Float)  # max(source conflict, latest prediction's)
    # NULL unless labels in force on the post differ from each other or from the latest prediction;
    # then the id of the post's newest annotation row, so the queue serves fresh disputes first.
    disputed: Mapped[Optional[int]] = mapped_column(Integer)
    # Why the post left every queue (e.g. "image file missing"), and when; NULL: in the queues.
    set_aside: Mapped[Optional[str]] = mapped_column(String(200))
    set_aside_at: Mapped[Optional[dt.datetime]]

    __table_args__ = (
        CheckConstraint("text_label IS NULL OR " + sql_in("text_label", LABELS), name="text_label"),
        CheckConstraint("image_label IS NULL OR " + sql_in("image_label", LABELS), name="image_label"),
        Index(
            "uq_posts_source",
            "source",
            unique=True,
            sqlite_where=sql_text("source <> 'upload'"),
            postgresql_where=sql_text("source <> 'upload'"),
        ),
        Index("ix_posts_confidence", "confidence", "id"),
        Index("ix_posts_conflict", "conflict", "id"),  # walked backwards: highest first
        Index("ix_posts_disputed", "disputed"),
        Index("uq_posts_content_sha256", "content_sha256", unique=True),
    )


class ModelVersion(Base):
    """A trained checkpoint the app can serve; at most one row has is_default true."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    checkpoint_path: Mapped[str] = mapped_column(Text)
    checkpoint_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[Optional[dict[str, Any]]]
    trained_on_export_id: Mapped[Optional[str]] = mapped_column(String(64))  # exports.id, no FK
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "uq_model_versions_default",
            "is_default",
            unique=True,
            sqlite_where=sql_text("is_default"),
            postgresql_where=sql_text("is_default"),
        ),
    )


class Prediction(Base):
    """What a model said about a post (append-only; the latest per post counts)."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    model_version_id: Mapped[Optional[int]] = mapped_column(ForeignKey("model_versions.id"))
    model_name: Mapped[Optional[str]] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(16))
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    # Image-only vs text-only disagreement in [0, 1], filled by the app when it computes one.
    conflict: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint(sql_in("label", LABELS), name="label"),
        CheckConstraint(
            "p_negative BETWEEN 0 AND 1 AND p_neutral BETWEEN 0 AND 1 AND p_positive BETWEEN 0 AND 1",
            name="probs",
        ),
        Index("ix_predictions_post_id", "post_id", "id"),
    )


class Annotator(Base):
    __tablename__ = "annotators"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("length(trim(name)) > 0", name="name_not_empty"),)


class Annotation(Base):
    """One row of the append-only history; the latest row per (post, annotator) is their verdict."""

    __tablename__ = "annotations"
    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    kind: Mapped[str] = mapped_column(String(16), default="label", server_default="label")
    label: Mapped[Optional[str]] = mapped_column(String(16))  # set iff kind == 'label'
    note: Mapped[Optional[str]] = mapped_column(Text)
    rationale: Mapped[Optional[list[str]]]  # words the annotator marked as the reason
    shown_prediction_id: Mapped[Optional[int]] = mapped_column(ForeignKey("predictions.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint("label IS NULL OR " + sql_in("label", LABELS), name="label"),
        CheckConstraint(sql_in("kind", KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'label' AND label IS NOT NULL) OR (kind <> 'label' AND label IS NULL)",
            name="label_iff_kind_label",
        ),
        Index("ix_annotations_post_annotator", "post_id", "annotator_id", "id"),
        Index("ix_annotations_annotator", "annotator_id", "id"),
    )


class Adjudication(Base):
    """A reviewer's final label for a post (append-only; the latest row per post is in force)."""

    __tablename__ = "adjudications"
    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    label: Mapped[str] = mapped_column(String(16))
    note: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint(sql_in("label", LABELS), name="label"),
        Index("ix_adjudications_post_id", "post_id", "id"),
    )


class Export(Base):
    """A snapshot written by export_snapshot(); the files live under `path`."""

    __tablename__ = "exports"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    manifest: Mapped[dict[str, Any]]
    path: Mapped[str] = mapped_column(Text)


class ImageBlob(Base):
    """An uploaded image's bytes, kept in the database when the data folder may be wiped (a Space restart);
    the file under `<data_dir>/images/` is restored from it when missing."""

    __tablename__ = "image_blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    ext: Mapped[str] = mapped_column(String(8))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A person who may sign in (self-hosted) or whose Hugging Face name gets a role; argon2 hash only."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[Optional[str]] = mapped_column(Text)  # None: no password login (e.g. token only)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint(sql_in("role", ROLES), name="role"),)


class ApiToken(Base):
    """A script's token for an account; only its sha256 is stored (the token itself is shown once)."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    label: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[Optional[dt.datetime]]
    revoked_at: Mapped[Optional[dt.datetime]]

    __table_args__ = (Index("ix_api_tokens_account_id", "account_id"),)


JOB_STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
ACTIVE_JOB_STATES: tuple[str, ...] = ("queued", "running")


class Job(Base):
    """A background job (e.g. retraining): its state lives here so that every app process sees it."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[Optional[str]] = mapped_column(String(200))
    params: Mapped[Optional[dict[str, Any]]]
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # in [0, 1]
    stage: Mapped[str] = mapped_column(Text, default="")  # what the worker is doing now
    eta_seconds: Mapped[Optional[float]] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[Optional[str]] = mapped_column(String(200))  # host:pid of the process running it
    report: Mapped[Optional[dict[str, Any]]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[Optional[dt.datetime]]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)  # the worker's heartbeat
    finished_at: Mapped[Optional[dt.datetime]]

    __table_args__ = (
        CheckConstraint(sql_in("state", JOB_STATES), name="state"),
        Index(  # at most one queued-or-running job per kind, whichever replica started it
            "uq_jobs_active",
            "kind",
            unique=True,
            sqlite_where=sql_text(sql_in("state", ACTIVE_JOB_STATES)),
            postgresql_where=sql_text(sql_in("state", ACTIVE_JOB_STATES)),
        ),
        Index("ix_jobs_kind_id", "kind", "id"),
    )
