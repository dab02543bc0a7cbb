"""User input at the edge: an image component that checks the bytes whatever the transport, a post-id
field that never rounds, text limits, and the one place where a library's ValueError becomes a
``gr.Error`` the user reads (with absolute server paths redacted for everyone but admins)."""
from __future__ import annotations

import base64
import binascii
import html
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gradio as gr

from annotations.errors import AnnotationError
from annotations.images import MAX_IMAGE_BYTES, MAX_IMAGE_MB, check_image_bytes
from annotations.labels import MAX_TEXT_CHARS, check_clean

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = MAX_IMAGE_MB  # the same limit in the app and in the store
MAX_POST_ID = 2**63 - 1
# An absolute path: a slash not preceded by a word character, a dot, a colon or another slash (so no URL,
# fraction or relative path), at least one folder, then the file name, which is all that is kept.
_POSIX_PATH = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s'\"`<>|:;,()\[\]{}/]+/)+([^\s'\"`<>|:;,()\[\]{}/]*)")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s'\"`<>|:;,()\[\]{}\\]+\\)*([^\s'\"`<>|:;,()\[\]{}\\]*)")


def redact_paths(message: str) -> str:
    """``message`` with every absolute path cut to ``…/<file name>`` (the server's folders are nobody's business)."""
    return _WINDOWS_PATH.sub(r"…\\\1", _POSIX_PATH.sub(r"…/\1", message))


def user_error(message: str, reveal_paths: bool = False) -> gr.Error:
    """A ``gr.Error`` for a user mistake: shown in the UI and to API clients, no traceback in the log.
    Absolute paths are redacted unless ``reveal_paths`` (admins)."""
    shown = message if reveal_paths else redact_paths(message)
    return gr.Error(html.escape(shown, quote=False), print_exception=False)


@contextmanager
def user_errors(identity=None) -> Iterator[None]:
    """Turn the libraries' bad-input errors (ValueError subclasses with a user-facing message) into ``gr.Error``;
    an admin ``identity`` sees paths in them, anyone else only file names."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as e:  # InputError, AnnotationError, ModelUnavailable, unknown CAM method ...
        log.info("bad input: %s", e)
        raise user_error(str(e), reveal_paths=bool(getattr(identity, "is_admin", False))) from e


def require_image(path: str | None) -> str:
    if not path:
        raise user_error("No image: upload, paste or pick an example image first")
    return path


def check_text_length(text: str | None) -> str:
    """The text as given; an error when empty, longer than MAX_TEXT_CHARS, or holding NUL / lone surrogates
    (emoji and RTL scripts are fine)."""
    if text is None or not str(text).strip():
        raise user_error("The text is empty: type or paste the post's text")
    if len(text) > MAX_TEXT_CHARS:
        raise user_error(f"The text has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,} "
                         "(the model reads only the first 64 tokens anyway)")
    with user_errors():
        return check_clean(text, "The text")


def check_post_id(value) -> int:
    """A post id as sent by a client: a whole number from 1 to 2**63 - 1, never rounded (1.5 is not post 2)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise user_error(f"Post id must be a whole number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise user_error(f"Post id must be a whole number, got {value!r}")
    if not 1 <= value <= MAX_POST_ID:
        raise user_error(f"Post id must be between 1 and {MAX_POST_ID}, got {value!r}")
    return int(value)


class PostIdNumber(gr.Number):
    """``gr.Number`` (same front end) whose value reaches the handler checked and unrounded: ``gr.Number``
    with ``precision=0`` rounds 1.5 to 2 and takes ``True`` for 1."""

    is_template = True

    def preprocess(self, payload):
        if payload is None or payload == "":
            return None
        return check_post_id(payload)


def _payload_bytes(payload) -> bytes:
    """An image payload's bytes, its size checked before they are decoded or read: a ``data:`` URL or a file."""
    url = getattr(payload, "url", None) or ""
    if url.startswith("data:"):
        encoded = url.split(",", 1)[-1]
        if len(encoded) * 3 // 4 > MAX_IMAGE_BYTES:
            raise user_error(f"The image is about {len(encoded) * 3 / 4e6:.1f} MB; the limit is {MAX_IMAGE_MB} MB. "
                             "Upload a smaller or compressed version (the model sees 224x224 pixels).")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as e:
            raise user_error("The image could not be read (bad base64 in the data: URL): upload a JPEG, PNG, "
                             "GIF or WebP") from e
    path = getattr(payload, "path", None)
    if not path or not os.path.isfile(path):
        raise user_error("No image: upload, paste or pick an example image first")
    size = os.path.getsize(path)
    if size > MAX_IMAGE_BYTES:
        raise user_error(f"The image file is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_MB} MB. "
                         "Upload a smaller or compressed version (the model sees 224x224 pixels).")
    return Path(path).read_bytes()


class CheckedImage(gr.Image):
    """``gr.Image`` (same front end) that checks the image's bytes before any handler runs, whatever the
    transport (an upload, a ``data:`` URL): at most 20 MB, a JPEG, PNG, GIF or WebP by its bytes, within
    the pixel limit, decodable. The handler gets a file whose extension is the sniffed format's, never the
    client's (a PNG named ``x.html`` arrives as ``image.png``)."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is None:
            return None
        data = _payload_bytes(payload)
        try:
            ext = check_image_bytes(data)
        except AnnotationError as e:
            raise user_error(str(e)) from e
        path = getattr(payload, "path", None)
        url = getattr(payload, "url", None) or ""
        if path and not url.startswith("data:") and Path(path).suffix.lower() == f".{ext}":
            return str(path)
        from gradio.processing_utils import save_bytes_to_cache

        return save_bytes_to_cache(data, f"image.{ext}", self.GRADIO_CACHE)
