"""Posts on disk: MVSA-Single, annotation exports and user CSVs, with clear errors for bad input."""
from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .config import LABELS

log = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)


class InputError(ValueError):
    """Input a user supplied cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Post:
    id: str  # e.g. "1234" for MVSA, "export:<post id>" for corrections
    text: str
    image: str  # path to the image file
    label: str | None  # None where held back (MVSA test) or unknown
    split: str  # train | val | test | unlabeled | extra
    source: str = "mvsa-single"
    text_label: str | None = None  # per-modality labels, where the data set has them (MVSA does)
    image_label: str | None = None


def load_mvsa(data_dir: str | Path) -> list[Post]:
    """All 4,869 MVSA-Single posts from ``posts.csv`` and ``images/`` (see the dataset's README)."""
    data_dir = Path(data_dir)
    csv_path = data_dir / "posts.csv"
    if not csv_path.exists():
        raise InputError(f"{csv_path} not found: point --data-dir at the mvsa-single folder")
    posts = []
    for row in read_csv_rows(csv_path, required=("id", "text", "split", "label")):
        label, text_label, image_label = (row.get(k) or None for k in ("label", "text_label", "image_label"))
        for value in (label, text_label, image_label):
            if value is not None and value not in LABELS:
                raise InputError(f"{csv_path}: post {row['id']} has unknown label {value!r}")
        posts.append(Post(row["id"], row["text"], str(data_dir / "images" / f"{row['id']}.jpg"), label, row["split"],
                          text_label=text_label, image_label=image_label))
    return posts


def held_out_splits(val_trained: bool = False) -> tuple[str, ...]:
    """The MVSA splits whose labels never train: val and test, or test alone once a model is refit on
    train + val (``TrainConfig.train_on_val``). Corrections of other MVSA posts (train, unlabeled) do train."""
    return ("test",) if val_trained else ("val", "test")


def load_export_posts(export_dir: str | Path) -> list[Post]:
    """Corrected posts from an ``annotations`` export (hash-checked by ``annotations.export.load_export``)."""
    from annotations.export import load_export  # the annotation package imports neither torch nor gradio

    export_dir = Path(export_dir)
    rows = load_export(export_dir)
    return [Post(f"export:{r['post_id']}", r["text"], r.get("image_path") or "", r["label"], "extra",
                 r.get("source") or "upload") for r in rows]


def read_csv_rows(path: str | Path, required: tuple[str, ...] = ("id", "text")) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV with the required columns, or an InputError that says what is wrong."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}): save it as UTF-8 and try again") from e
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path} lacks the column(s) {missing}; it needs {list(required)}")
    return list(reader)


def load_image(source) -> Image.Image:
    """An RGB PIL image from a path, bytes or a PIL image; alpha is flattened onto white."""
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
            img = Image.open(fp)
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(f"The image is too large ({img.width}x{img.height} pixels); "
                                 f"the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels")
            img.seek(0)  # first frame of an animated GIF
            img.load()
    except FileNotFoundError as e:
        raise InputError(f"Image file not found: {source}") from e
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"The image could not be read ({e.__class__.__name__}): upload a JPEG, PNG, GIF or WebP") from e
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def check_text(text: str | None) -> str:
    """Stripped text, or an InputError when there is nothing to read."""
    if text is None or not str(text).strip():
        raise InputError("The text is empty: type or paste the post's text")
    return str(text).strip()


def posts_hash(posts: list[Post], with_labels: bool = True) -> str:
    """A short content hash of a list of posts (ids, texts, image file sizes, labels)."""
    h = hashlib.sha256()
    for p in posts:
        size = Path(p.image).stat().st_size if p.image and Path(p.image).exists() else -1
        h.update(f"{p.id}\x1f{p.text}\x1f{size}\x1f{p.label if with_labels else ''}\x1e".encode())
    return h.hexdigest()[:16]


def split(posts: list[Post], name: str) -> list[Post]:
    return [p for p in posts if p.split == name]
