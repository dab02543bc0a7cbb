"""Annotation store for MMSA: posts, predictions, corrections, a queue, review, stats and exports.

    from annotations import create_engine_from_url, init_db, create_sessionmaker, save_correction
    engine = create_engine_from_url()            # $MMSA_DB_URL, else SQLite under ./data
    init_db(engine)                              # Alembic migrations to head
    sessions = create_sessionmaker(engine)
    with sessions.begin() as s:                  # one short session per user action
        save_correction(s, post_id, "ana", "positive")

Imports neither torch nor gradio. See docs/annotations.md.
"""
from annotations.db import (
    create_engine_from_url,
    create_sessionmaker,
    current_revision,
    default_data_dir,
    default_db_url,
    head_revision,
    init_db,
)
from annotations.errors import AnnotationError, ExportIntegrityError
from annotations.export import export_snapshot, load_export, load_manifest
from annotations.importer import import_posts, read_posts_csv
from annotations.labels import KINDS, LABELS
from annotations.model_versions import (
    get_default_model,
    get_model_version,
    list_model_versions,
    register_model_version,
    set_default_model,
)
from annotations.content import content_sha256, image_available
from annotations.queue import STRATEGIES, is_open, next_in_queue, progress
from annotations.review import adjudicate, disputed_posts, majority, post_verdicts, review_counts, review_post
from annotations.setaside import clear_set_aside, list_set_aside, recheck_set_aside, set_aside
from annotations.stats import cohen_kappa, fleiss_kappa, stats
from annotations.store import (
    add_post,
    annotator_id,
    current_labels,
    ensure_post,
    get_post,
    history,
    list_annotators,
    record_prediction,
    save_correction,
    skip,
    undo_last,
)

__all__ = [
    "AnnotationError", "ExportIntegrityError", "KINDS", "LABELS", "STRATEGIES",
    "add_post", "adjudicate", "annotator_id", "clear_set_aside", "cohen_kappa", "content_sha256",
    "create_engine_from_url", "create_sessionmaker", "current_labels", "current_revision", "default_data_dir",
    "default_db_url", "disputed_posts", "ensure_post", "export_snapshot", "fleiss_kappa", "get_default_model",
    "get_model_version", "get_post", "head_revision", "history", "image_available", "import_posts", "init_db",
    "is_open",
    "list_annotators", "list_model_versions", "list_set_aside", "load_export", "load_manifest", "majority",
    "next_in_queue", "post_verdicts", "progress", "read_posts_csv", "recheck_set_aside", "record_prediction",
    "register_model_version", "review_counts", "review_post", "save_correction", "set_aside",
    "set_default_model", "skip", "stats", "undo_last",
]
