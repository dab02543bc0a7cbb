"""User input at the edge: an image component that reports unreadable uploads clearly, text limits, and
the one place where a library's ValueError becomes a ``gr.Error`` the user reads."""
from __future__ import annotations

import html
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 20  # social-media images are far smaller; the model sees 224x224 pixels anyway
MAX_TEXT_CHARS = 20_000  # longer texts are refused; the model reads the first max_text_len tokens


def user_error(message: str) -> gr.Error:
    """A ``gr.Error`` for a user mistake: shown in the UI and to API clients, no traceback in the log."""
    return gr.Error(html.escape(message, quote=False), print_exception=False)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the libraries' bad-input errors (ValueError subclasses with a user-facing message) into ``gr.Error``."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as e:  # InputError, AnnotationError, ModelUnavailable, unknown CAM method ...
        log.info("bad input: %s", e)
        raise user_error(str(e)) from e


def check_upload_size(path: str | None) -> None:
    if path and os.path.isfile(path):
        mb = os.path.getsize(path) / 1e6
        if mb > MAX_UPLOAD_MB:
            raise user_error(f"The image file is {mb:.1f} MB; the limit is {MAX_UPLOAD_MB} MB. "
                             "Upload a smaller or compressed version (the model sees 224x224 pixels).")


def require_image(path: str | None) -> str:
    if not path:
        raise user_error("No image: upload, paste or pick an example image first")
    return path


def require_name(name: str | None) -> str:
    """The stripped annotator name, or an error that says where to type it."""
    if not name or not str(name).strip():
        raise user_error("Who is annotating? Type your name in the box at the top of the page first")
    return str(name).strip()


def check_text_length(text: str | None) -> str:
    """The text as given; an error when empty or longer than MAX_TEXT_CHARS (emoji and RTL scripts are fine)."""
    if text is None or not str(text).strip():
        raise user_error("The text is empty: type or paste the post's text")
    if len(text) > MAX_TEXT_CHARS:
        raise user_error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} "
                         "(the model reads only the first 64 tokens anyway)")
    return text


class CheckedImage(gr.Image):
    """``gr.Image`` (same front end) whose upload errors read "The image could not be read ..." instead of a
    bare "Error": a file that is not an image, or too large, is refused before any handler runs."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is not None and getattr(payload, "path", None):
            check_upload_size(payload.path)
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:  # PIL's UnidentifiedImageError, truncated files, decompression bombs ...
            raise user_error(f"The image could not be read ({e.__class__.__name__}): "
                             "upload a JPEG, PNG, GIF or WebP") from e
