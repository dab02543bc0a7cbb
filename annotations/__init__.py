"""Annotation store for MMSA: posts, predictions, corrections, a queue, stats and exports.

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
from annotations.queue import STRATEGIES, next_in_queue
from annotations.stats import cohen_kappa, fleiss_kappa, stats
from annotations.store import (
    add_post,
    annotator_id,
    current_labels,
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
    "add_post", "annotator_id", "cohen_kappa", "create_engine_from_url", "create_sessionmaker",
    "current_labels", "current_revision", "default_data_dir", "default_db_url", "export_snapshot",
    "fleiss_kappa", "get_default_model", "get_model_version", "get_post", "head_revision", "history",
    "import_posts", "init_db", "list_annotators", "list_model_versions", "load_export", "load_manifest",
    "next_in_queue", "read_posts_csv", "record_prediction", "register_model_version", "save_correction",
    "set_default_model", "skip", "stats", "undo_last",
]
