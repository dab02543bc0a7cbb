"""Model versions: registered checkpoints, their metrics, and which one the app serves by default."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from annotations.errors import AnnotationError
from annotations.images import sha256_file
from annotations.models import ModelVersion

log = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _model_dict(row: ModelVersion) -> dict[str, Any]:
    return {
        "model_version_id": row.id,
        "name": row.name,
        "checkpoint_path": row.checkpoint_path,
        "checkpoint_sha256": row.checkpoint_sha256,
        "metrics": row.metrics,
        "trained_on_export_id": row.trained_on_export_id,
        "is_default": row.is_default,
        "created_at": row.created_at.isoformat(),
    }


def register_model_version(
    session: Session,
    name: str,
    checkpoint_path: Union[str, Path],
    checkpoint_sha256: Optional[str] = None,
    metrics: Optional[dict[str, Any]] = None,
    trained_on_export_id: Optional[str] = None,
    make_default: bool = False,
) -> dict[str, Any]:
    """Register a checkpoint under a unique name; the sha256 is computed from the file when not given."""
    if not isinstance(name, str) or not name.strip():
        raise AnnotationError(f"Model version name must be a non-empty string, got {name!r}")
    name = name.strip()
    if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
        raise AnnotationError(f"A model version named {name!r} already exists; pick a new name")
    if checkpoint_sha256 is None:
        if not Path(checkpoint_path).is_file():
            raise AnnotationError(f"Checkpoint file not found: {checkpoint_path} (or pass checkpoint_sha256)")
        checkpoint_sha256 = sha256_file(checkpoint_path)
    if not _SHA256_RE.match(checkpoint_sha256):
        raise AnnotationError(f"checkpoint_sha256 must be 64 lowercase hex digits, got {checkpoint_sha256!r}")
    row = ModelVersion(
        name=name, checkpoint_path=str(checkpoint_path), checkpoint_sha256=checkpoint_sha256,
        metrics=metrics, trained_on_export_id=trained_on_export_id, is_default=False,
    )
    session.add(row)
    session.flush()
    if make_default:
        return set_default_model(session, name)
    return _model_dict(row)


def list_model_versions(session: Session) -> list[dict[str, Any]]:
    """All model versions, newest first."""
    rows = session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()))
    return [_model_dict(r) for r in rows]


def get_model_version(session: Session, name: str) -> dict[str, Any]:
    """One model version by name; AnnotationError listing the known names if there is none."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
    if row is None:
        known = list(session.scalars(select(ModelVersion.name).order_by(ModelVersion.id)))
        raise AnnotationError(f"Unknown model version {name!r}; choose from {known}")
    return _model_dict(row)


def set_default_model(session: Session, name: str) -> dict[str, Any]:
    """Make `name` the default model (and no other); returns it."""
    target = get_model_version(session, name)
    # Clear first: a partial unique index allows at most one default row at any moment.
    session.execute(
        update(ModelVersion).where(ModelVersion.is_default.is_(True)).values(is_default=False)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ModelVersion).where(ModelVersion.id == target["model_version_id"]).values(is_default=True)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    log.info("default model is now %s", name)
    return {**target, "is_default": True}


def get_default_model(session: Session) -> Optional[dict[str, Any]]:
    """The default model version, or None when none is set."""
    row = session.scalar(select(ModelVersion).where(ModelVersion.is_default.is_(True)))
    return _model_dict(row) if row else None
