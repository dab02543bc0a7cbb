"""The label schema and the small validators every store function shares."""
from __future__ import annotations

from typing import Any

from annotations.errors import AnnotationError

# The order is the probability order everywhere: (p_negative, p_neutral, p_positive).
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# What one row of the append-only annotation history records.
#   label   -- the annotator's (new) label for the post
#   skip    -- the annotator passed on the post; it leaves their queue
#   retract -- undo: withdraws the annotator's current label/skip on the post
KINDS: tuple[str, ...] = ("label", "skip", "retract")


def check_label(label: Any) -> str:
    """Return `label` if it is one of LABELS, else raise AnnotationError listing the valid labels."""
    if label not in LABELS:
        raise AnnotationError(f"Unknown label {label!r}; choose from {list(LABELS)}")
    return label


def check_annotator_name(name: Any) -> str:
    """Return the stripped annotator name; raise AnnotationError when it is empty or not a string."""
    if not isinstance(name, str) or not name.strip():
        raise AnnotationError(f"Annotator name must be a non-empty string, got {name!r}")
    return name.strip()


def is_conflict_pair(text_label: str | None, image_label: str | None) -> float | None:
    """1.0 when text and image labels point opposite ways (positive vs negative), 0.0 when they
    do not, None when either is unknown."""
    if text_label is None or image_label is None:
        return None
    return 1.0 if {text_label, image_label} == {"positive", "negative"} else 0.0
