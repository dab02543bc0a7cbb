"""What makes a post the same post, and whether its image file is there.

A post is its content: the image bytes (through their sha256) and the text. Saving the same image and
text again, from any source, is the same post; `posts.content_sha256` holds this hash, under a unique
index. Migration 0003 keeps its own frozen copy of `content_sha256` (a migration must not change
when the code does); a test checks that the two agree.
"""
from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Optional, Union

from sqlalchemy.orm import object_session

from annotations.images import image_relpath
from annotations.models import Post

IMAGE_MISSING = "image file missing"  # posts.set_aside reason when image_available() is False


def normalize_text(text: str) -> str:
    """The text as the content hash sees it: stripped, Unicode NFC (so 'é' typed either way is one post)."""
    return unicodedata.normalize("NFC", text.strip())


def content_sha256(image_sha256: Optional[str], text: str) -> str:
    """Hex sha256 over the image's sha256 ('' for a text-only post) and the normalised text.

    The image hash is 64 hex characters or empty and is followed by a newline, so the two parts
    cannot run into each other.
    """
    return hashlib.sha256(f"{image_sha256 or ''}\n{normalize_text(text)}".encode("utf-8")).hexdigest()


def image_available(post: Post, data_dir: Union[str, Path]) -> bool:
    """True when the post needs no image or its file exists under `<data_dir>/images/` (restored from the
    database's copy, `image_blobs`, when the data folder lost it).

    The one place that decides whether a post's image can be shown: the queue sets a post aside when
    this is False.
    """
    if post.image_sha256 is None:
        return True
    if (Path(data_dir) / image_relpath(post.image_sha256, post.image_ext or "")).is_file():
        return True
    session = object_session(post)
    if session is None:
        return False
    from annotations.blobs import ensure_image_file  # blobs -> models; imported late to keep this module small

    return ensure_image_file(session, post.image_sha256, post.image_ext or "", data_dir) is not None
