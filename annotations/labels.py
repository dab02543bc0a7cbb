"""The label schema and the small validators every store function shares."""
from __future__ import annotations

import unicodedata
from typing import Any, Optional

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


# Limits on what people type. Texts are tweets (MVSA's longest has 140 characters); the model reads 64 tokens.
MAX_NAME_CHARS = 64
MAX_NOTE_CHARS = 2_000
MAX_TEXT_CHARS = 5_000
NAME_PUNCTUATION = " ._-@"  # besides letters and digits (any script)


def check_clean(value: str, what: str) -> str:
    """`value` unchanged; AnnotationError when it holds a NUL character or an unpaired surrogate, which
    no database stores (PostgreSQL refuses NUL, UTF-8 cannot encode a lone surrogate)."""
    if "\x00" in value:
        raise AnnotationError(f"{what} contains a NUL character (\\x00); remove it")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise AnnotationError(f"{what} contains an unpaired surrogate (broken UTF-16); remove it")
    return value


def check_name(name: Any, what: str = "Annotator name") -> str:
    """The stripped name (NFC), or AnnotationError: 1-64 characters, letters and digits of any script,
    space and `. _ - @`; no control characters. Used for annotators and accounts alike."""
    if not isinstance(name, str) or not name.strip():
        raise AnnotationError(f"{what} must be a non-empty string, got {name!r}")
    name = unicodedata.normalize("NFC", check_clean(name, what).strip())
    if len(name) > MAX_NAME_CHARS:
        raise AnnotationError(f"{what} has {len(name):,} characters; the limit is {MAX_NAME_CHARS}")
    bad = sorted({ch for ch in name if not (ch.isalpha() or ch.isdigit() or ch in NAME_PUNCTUATION)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:5])
        raise AnnotationError(f"{what} may only hold letters, digits, spaces and . _ - @ (found {shown})")
    return name


def check_annotator_name(name: Any) -> str:
    """Return the stripped annotator name; raise AnnotationError when it breaks the name rules (`check_name`)."""
    return check_name(name, "Annotator name")


def check_note(note: Optional[str]) -> Optional[str]:
    """The stripped note, None when empty; AnnotationError when too long or holding NUL / surrogates."""
    if note is None:
        return None
    if not isinstance(note, str):
        raise AnnotationError(f"A note must be a string, got {type(note).__name__}")
    note = check_clean(note, "The note").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise AnnotationError(f"The note has {len(note):,} characters; the limit is {MAX_NOTE_CHARS:,}")
    return note or None


def check_text(text: Any) -> str:
    """A post's text as given; AnnotationError when not a string, too long or holding NUL / surrogates."""
    if not isinstance(text, str):
        raise AnnotationError(f"Post text must be a string, got {type(text).__name__}")
    check_clean(text, "The text")
    if len(text) > MAX_TEXT_CHARS:
        raise AnnotationError(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return text


def is_conflict_pair(text_label: str | None, image_label: str | None) -> float | None:
    """1.0 when text and image labels point opposite ways (positive vs negative), 0.0 when they
    do not, None when either is unknown."""
    if text_label is None or image_label is None:
        return None
    return 1.0 if {text_label, image_label} == {"positive", "negative"} else 0.0
