"""Content-addressed image files: `<data_dir>/images/<sha[:2]>/<sha>.<ext>`.

The same bytes always land at the same path, so storing an image twice writes one file. Files are
written to a temporary name in the target directory and renamed into place, so a reader (or a
crash) never sees a half-written image.

The extension comes from the bytes, never from a client's file name: the folder is served to
browsers, and a file named `<sha>.html` would be served as a web page. Only JPEG, PNG, GIF and WebP
that Pillow decodes within the size and pixel limits are stored (`check_image_bytes`).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Optional, Union

from annotations.errors import AnnotationError

log = logging.getLogger(__name__)

ImageInput = Union[bytes, str, "os.PathLike[str]"]

IMAGE_EXTS = ("jpg", "png", "gif", "webp")  # the only extensions ever written under images/
MAX_IMAGE_MB = 20  # social-media images are far smaller; the model sees 224x224 pixels anyway
MAX_IMAGE_BYTES = MAX_IMAGE_MB * 1_000_000
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
_PIL_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)
ACCEPTED = "upload a JPEG, PNG, GIF or WebP"


def sniff_ext(data: bytes) -> Optional[str]:
    """The extension (one of IMAGE_EXTS) implied by the first bytes of an image, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    return None


def check_image_bytes(data: bytes) -> str:
    """The extension of an acceptable image, else AnnotationError saying why.

    Acceptable: at most MAX_IMAGE_BYTES, a JPEG, PNG, GIF or WebP by its magic bytes *and* by Pillow,
    at most MAX_IMAGE_PIXELS (checked from the header, before decoding), and decodable to the end.
    """
    if not data:
        raise AnnotationError("Image is empty (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise AnnotationError(f"The image file is {len(data) / 1e6:.1f} MB; the limit is {MAX_IMAGE_MB} MB. "
                              "Upload a smaller or compressed version (the model sees 224x224 pixels).")
    ext = sniff_ext(data)
    if ext is None:
        raise AnnotationError(f"The image could not be read: it is not a JPEG, PNG, GIF or WebP file; {ACCEPTED}")
    from PIL import Image  # lazy: importing the package stays light

    try:
        with Image.open(io.BytesIO(data)) as im:
            if _PIL_FORMATS.get(im.format or "") != ext:
                raise AnnotationError(f"The image could not be read: its bytes start like {ext} but decode as "
                                      f"{im.format}; {ACCEPTED}")
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise AnnotationError(f"The image is too large ({im.width}x{im.height} pixels); "
                                      f"the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels")
            if ext == "jpg":
                im.draft("RGB", (256, 256))  # decode at 1/8 scale: still reads the whole stream
            im.load()
    except AnnotationError:
        raise
    except Exception as e:  # UnidentifiedImageError, truncated streams, decompression bombs ...
        raise AnnotationError(f"The image could not be read ({e.__class__.__name__}): {ACCEPTED}") from e
    return ext


def image_relpath(sha256: str, ext: str) -> str:
    """Where an image lives relative to the data directory (always with forward slashes)."""
    return f"images/{sha256[:2]}/{sha256}.{ext}"


def read_image_input(image: ImageInput) -> tuple[bytes, str]:
    """Read bytes or a file path into (bytes, extension sniffed from the bytes); AnnotationError on bad
    input. A path's suffix is ignored: `x.html` holding a PNG is a PNG, `x.png` holding HTML is refused."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        path = Path(image)
        if not path.is_file():
            raise AnnotationError(f"Image file not found: {path}")
        if path.stat().st_size > MAX_IMAGE_BYTES:  # before reading it into memory
            raise AnnotationError(f"The image file is {path.stat().st_size / 1e6:.1f} MB; "
                                  f"the limit is {MAX_IMAGE_MB} MB")
        data = path.read_bytes()
    return data, check_image_bytes(data)


def store_image(data_dir: Union[str, Path], data: bytes, ext: str) -> tuple[str, Optional[Path]]:
    """Write `data` content-addressed under `data_dir` (idempotent); returns (sha256, the path when this
    call created the file, else None)."""
    if ext not in IMAGE_EXTS:
        raise AnnotationError(f"Refusing to store an image as .{ext}; only {IMAGE_EXTS}")
    sha = hashlib.sha256(data).hexdigest()
    target = Path(data_dir) / image_relpath(sha, ext)
    if target.exists():
        return sha, None
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
    return sha, target


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
