"""Exceptions raised for bad input; both are ValueErrors so callers may catch either."""
from __future__ import annotations


class AnnotationError(ValueError):
    """Bad input to the store (unknown label, empty annotator, missing file, unknown post ...).

    Raised before anything is written, so the database and data directory are unchanged.
    """


class ExportIntegrityError(AnnotationError):
    """An export directory does not match its manifest (missing, edited or extra content)."""
