"""Content-addressed image files: `<data_dir>/images/<sha[:2]>/<sha>.<ext>`.

The same bytes always land at the same path, so storing an image twice writes one file. Files are
written to a temporary name in the target directory and renamed into place, so a reader (or a
crash) never sees a half-written image.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Optional, Union

from annotations.errors import AnnotationError

log = logging.getLogger(__name__)

ImageInput = Union[bytes, str, "os.PathLike[str]"]

# Magic numbers of the formats a browser upload is likely to be.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")


def sniff_ext(data: bytes) -> Optional[str]:
    """The file extension implied by the first bytes of an image, or None if unrecognised."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    return None


def image_relpath(sha256: str, ext: str) -> str:
    """Where an image lives relative to the data directory (always with forward slashes)."""
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def read_image_input(image: ImageInput, ext: Optional[str] = None) -> tuple[bytes, str]:
    """Read bytes or a file path into (bytes, extension); raise AnnotationError on bad input."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        suffix = None
    else:
        path = Path(image)
        if not path.is_file():
            raise AnnotationError(f"Image file not found: {path}")
        data = path.read_bytes()
        suffix = path.suffix.lstrip(".").lower() or None
    if not data:
        raise AnnotationError("Image is empty (0 bytes)")
    ext = (ext or suffix or sniff_ext(data) or "").lower().lstrip(".")
    if not _EXT_RE.match(ext):
        raise AnnotationError(
            f"Cannot tell the image format (extension {ext!r}); pass ext='jpg' or a file path with a suffix"
        )
    return data, ext


def store_image(data_dir: Union[str, Path], data: bytes, ext: str) -> str:
    """Write `data` content-addressed under `data_dir`; return its sha256 (idempotent)."""
    sha = hashlib.sha256(data).hexdigest()
    target = Path(data_dir) / image_relpath(sha, ext)
    if target.exists():
        return sha
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=f".{ext}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)  # atomic; a concurrent writer of the same bytes is harmless
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("stored image %s", target)
    return sha


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
