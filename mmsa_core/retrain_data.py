"""What retraining trains and judges on: the database's labels (plus MVSA-Single where it is on disk),
with a stable audit slice of the database's labels that is never trained on.

The audit set is chosen by content, not by chance: a labelled post is in it when a hash of its image and
text (salted with ``seed``) falls below ``share``. So the same posts are in it on every run, a post keeps
its side when its label changes, and new labels join it in the same proportion.

Bases:
- ``db``: the database's labelled posts alone (a team using the app on its own posts; no MVSA needed);
- ``mvsa-single``: MVSA train + the database's labels (a label on an MVSA train post overrides MVSA's),
  judged on MVSA val as well; labels of MVSA val/test posts never train. When the served model was refit on
  train+val (``val_trained``, as the shipped default is), MVSA val trains too, like MVSA train, and only the
  audit set judges: val would be in-sample for the old model.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .data import Post, held_out_splits, load_export_posts, load_mvsa

log = logging.getLogger(__name__)

AUDIT_SHARE = 0.2  # of the database's labelled posts
AUDIT_SEED = "mmsa-audit-v1"
BASES = ("auto", "db", "mvsa-single")


def audit_key(post: Post, seed: str = AUDIT_SEED) -> float:
    """A number in [0, 1) fixed by the post's content (image bytes' file name = their sha256, and text)."""
    image = Path(post.image).stem if post.image else ""
    digest = hashlib.sha256(f"{seed}\x1f{image}\x1f{post.text.strip()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def in_audit(post: Post, share: float = AUDIT_SHARE, seed: str = AUDIT_SEED) -> bool:
    return audit_key(post, seed) < share


@dataclass
class RetrainData:
    base: str  # db | mvsa-single
    train: list[Post]  # what the new model trains on
    audit: list[Post]  # database labels held out for the gate (never trained on)
    val: list[Post]  # MVSA val (empty for the db base)
    db_train: list[Post] = field(default_factory=list)  # the database's labels inside ``train``
    skipped: dict[str, int] = field(default_factory=dict)  # why some database labels could not be used
    val_trained: bool = False  # MVSA val is in ``train`` (the served model was refit on train + val)

    def describe(self) -> str:
        mvsa = "MVSA-Single train + val + " if self.val_trained else "MVSA-Single train + "
        what = (mvsa if self.base == "mvsa-single" else "") + f"{len(self.db_train)} database labels"
        judged = [f"{len(self.audit)} audit posts"] + ([f"{len(self.val)} MVSA val posts"] if self.val else [])
        return f"{what} ({len(self.train)} posts), judged on {' and '.join(judged)}"


def resolve_base(base: str, mvsa_dir: str | Path | None) -> str:
    """``auto`` -> mvsa-single when MVSA-Single is on disk, else db."""
    if base not in BASES:
        raise ValueError(f"Unknown base {base!r}; choose from {list(BASES)}")
    have_mvsa = bool(mvsa_dir) and (Path(mvsa_dir) / "posts.csv").is_file()
    if base == "auto":
        return "mvsa-single" if have_mvsa else "db"
    if base == "mvsa-single" and not have_mvsa:
        raise ValueError(f"--base mvsa-single needs MVSA-Single at {mvsa_dir} (posts.csv + images/); "
                         "use --base db to train on the database's labels alone")
    return base


def gather(export_dir: str | Path, base: str, mvsa_dir: str | Path | None = None, share: float = AUDIT_SHARE,
           seed: str = AUDIT_SEED, limit: int = 0, val_trained: bool = False) -> RetrainData:
    """Training, audit and val posts from an annotation export (final labels) and, for ``mvsa-single``, MVSA.

    ``limit`` keeps only the first N MVSA train posts (smoke tests); every database label is kept.
    ``val_trained``: the served model trained on MVSA val, so val trains here too instead of judging."""
    db = load_export_posts(export_dir)
    skipped = {"no image": sum(1 for p in db if not p.image)}
    db = [p for p in db if p.image]  # the model reads both modalities
    mvsa = {p.id: p for p in load_mvsa(mvsa_dir)} if base == "mvsa-single" else {}
    held_out = held_out_splits(val_trained)
    held = f"MVSA {'/'.join(held_out)} post"
    audit, db_train, overrides = [], [], {}
    for p in db:
        mvsa_id = p.source.split(":", 1)[1] if p.source.startswith("mvsa-single:") else None
        if mvsa_id in mvsa and mvsa[mvsa_id].split in held_out:
            skipped[held] = skipped.get(held, 0) + 1
            continue  # held out by the benchmark itself
        if in_audit(p, share, seed):
            audit.append(p)
            if mvsa_id in mvsa:
                overrides[mvsa_id] = None  # the audit post must not train under its MVSA label either
            continue
        if mvsa_id in mvsa:  # same id as MVSA: the cached MVSA features are reused
            base_post = mvsa[mvsa_id]
            p = Post(mvsa_id, base_post.text, base_post.image, p.label, "train", p.source)
            overrides[mvsa_id] = p
        db_train.append(p)
    train = [p for p in db_train if p.id not in mvsa]
    val = []
    if mvsa:
        mvsa_train = [p for p in mvsa.values() if p.split == "train"]
        val = [p for p in mvsa.values() if p.split == "val"]
        if limit:
            mvsa_train, val = mvsa_train[:limit], val[: max(limit // 4, 8)]
        if val_trained:
            mvsa_train, val = mvsa_train + val, []
        kept = [overrides.get(p.id, p) for p in mvsa_train]
        extra = [p for i, p in overrides.items() if p is not None and i not in {q.id for q in mvsa_train}]
        train = [p for p in kept if p is not None] + extra + train
    log.info("retraining data: %d train, %d audit, %d val; skipped %s", len(train), len(audit), len(val), skipped)
    return RetrainData(base, train, audit, val, db_train, {k: v for k, v in skipped.items() if v},
                       val_trained=val_trained and bool(mvsa))
