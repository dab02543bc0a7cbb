"""The example posts in ``assets/`` (a handful of cited MVSA-Single posts, see assets/README.md)."""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass(frozen=True)
class Example:
    id: str  # MVSA-Single post id
    image: str  # absolute path
    text: str
    label: str | None  # MVSA label (None: text and image disagree, so MVSA drops the post)
    text_label: str | None
    image_label: str | None

    @property
    def source(self) -> str:
        """The annotations source name, the same one ``annotations.importer`` gives MVSA posts."""
        return f"mvsa-single:{self.id}"


def load_examples(assets: Path = ASSETS) -> list[Example]:
    """The examples listed in ``assets/examples.csv`` (empty when the file is missing)."""
    path = assets / "examples.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [Example(r["id"], str((assets / r["image"]).resolve()), r["text"], r["label"] or None,
                        r["text_label"] or None, r["image_label"] or None) for r in csv.DictReader(f)]


def seed_examples(sessions, data_dir: Path, examples: list[Example]) -> int:
    """Put the examples into an empty database so the annotation queue is not empty on a fresh install.

    A database that already has posts is left alone; returns the number of posts added.
    """
    from sqlalchemy import func, select

    from annotations import add_post
    from annotations.models import Post

    with sessions.begin() as s:
        if s.scalar(select(func.count()).select_from(Post)):
            return 0
        for ex in examples:
            add_post(s, ex.text, ex.image, ex.source, data_dir, text_label=ex.text_label, image_label=ex.image_label)
    log.info("seeded %d example posts into an empty database", len(examples))
    return len(examples)
