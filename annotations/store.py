"""Store API: posts, predictions and the append-only correction history.

Every function takes an open `Session` plus plain values and returns plain values (ids, dicts);
the caller owns the transaction, one short one per user action:

    with sessions.begin() as s:
        ann_id = save_correction(s, post_id, "ana", "positive", shown_prediction_id=pred_id)

Input is validated before anything is written; bad input raises AnnotationError (a ValueError).
"""
from __future__ import annotations

import hashlib
import logging
import math
import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotations.content import IMAGE_MISSING, content_sha256, image_available
from annotations.db import default_data_dir
from annotations.errors import AnnotationError
from annotations.blobs import ensure_image_file, save_image
from annotations.images import ImageInput, image_relpath, read_image_input
from annotations.labels import (LABELS, check_annotator_name, check_clean, check_label, check_note, check_text,
                                is_conflict_pair)
from annotations.models import Annotation, Annotator, ModelVersion, Post, Prediction
from annotations.queries import is_latest

log = logging.getLogger(__name__)

UPLOAD = "upload"  # the one source that may repeat; any other source names exactly one post
PROB_TOLERANCE = 1e-3  # how far probabilities may sum from 1 (float32 softmax, rounding)
MAX_POST_ID = 2**63 - 1  # the largest BIGINT


# ---- posts ---------------------------------------------------------------------------------------

def add_post(
    session: Session,
    text: str,
    image: Optional[ImageInput] = None,
    source: str = UPLOAD,
    data_dir: Optional[Union[str, Path]] = None,
    *,
    text_label: Optional[str] = None,
    image_label: Optional[str] = None,
    keep_blob: Optional[bool] = None,
) -> int:
    """Add a post (text and/or image bytes or path) and return its id; one post per content.

    The same image bytes and the same text (stripped, NFC) are the same post, whatever the source:
    adding them again returns the existing post's id (an annotator saving it again is their change
    of mind, a new annotation row on that post). A source other than 'upload' (e.g.
    'mvsa-single:37') names one post too: adding it again returns that post's id.

    The image is stored content-addressed under `<data_dir>/images/`, with the extension of its
    sniffed format (JPEG, PNG, GIF or WebP; anything else is refused), and its bytes go into the
    `image_blobs` table too when `keep_blob` (default: `MMSA_IMAGES_IN_DB`, else on for any database
    but SQLite). A file written here is removed again if the transaction does not commit.
    `text_label`/`image_label` are per-modality labels from the source data, if known. See
    ensure_post() for the details.
    """
    return ensure_post(session, text, image, source, data_dir, text_label=text_label,
                       image_label=image_label, keep_blob=keep_blob)[0]


def ensure_post(
    session: Session,
    text: str,
    image: Optional[ImageInput] = None,
    source: str = UPLOAD,
    data_dir: Optional[Union[str, Path]] = None,
    *,
    text_label: Optional[str] = None,
    image_label: Optional[str] = None,
    keep_blob: Optional[bool] = None,
) -> tuple[int, bool]:
    """add_post() that also says whether it created the post: (post id, created).

    When the content exists already: the image file is written again if it went missing (and a
    post set aside because of that returns to the queues), and an `upload` post found under a named
    source takes that source and its per-modality labels, so training can link it to the data set.
    """
    text = check_text(text)
    if not isinstance(source, str) or not source.strip() or len(source) > 200:
        raise AnnotationError(f"Post source must be a non-empty string of at most 200 characters, got {source!r}")
    check_clean(source, "Post source")
    for value in (text_label, image_label):
        if value is not None:
            check_label(value)
    if image is None and not text.strip():
        raise AnnotationError("A post needs text or an image; both are empty")
    if source != UPLOAD:
        existing = session.scalar(select(Post.id).where(Post.source == source))
        if existing is not None:
            log.debug("post with source %s exists as #%d", source, existing)
            return existing, False
    data = ext = sha = None
    if image is not None:
        data, ext = read_image_input(image)  # checked (format, size, pixels, decodes) before any write
        sha = hashlib.sha256(data).hexdigest()
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    content = content_sha256(sha, text)
    found = session.scalar(select(Post).where(Post.content_sha256 == content))
    if found is not None:
        _update_existing(session, found, data, root, source, text_label, image_label, keep_blob)
        return found.id, False
    post = Post(
        text=text, image_sha256=sha, image_ext=ext, source=source, text_label=text_label, content_sha256=content,
        image_label=image_label, conflict=is_conflict_pair(text_label, image_label),
    )
    try:
        with session.begin_nested():  # a concurrent session may add the same content first
            session.add(post)
    except IntegrityError:
        raced = session.scalar(select(Post.id).where(or_(
            Post.content_sha256 == content, (Post.source == source) & (Post.source != UPLOAD))))
        if raced is None:
            raise
        return raced, False
    if data is not None:  # after the flush: on SQLite the write lock is held, the file is written inside it
        save_image(session, root, data, ext, keep_blob)
    return post.id, True


def _update_existing(session: Session, post: Post, data: Optional[bytes], root: Path, source: str,
                     text_label: Optional[str], image_label: Optional[str], keep_blob: Optional[bool]) -> None:
    """Bring back a missing image file and adopt a data-set source, for a post found by its content."""
    if data is not None and post.image_sha256 is not None:
        save_image(session, root, data, post.image_ext or "", keep_blob)  # idempotent: writes only a missing file
        if post.set_aside == IMAGE_MISSING and image_available(post, root):
            post.set_aside = post.set_aside_at = None
            log.info("post #%d is back in the queues: its image was added again", post.id)
    if source != UPLOAD and post.source == UPLOAD:
        _require_post(session, post.id, lock=True)
        post.source = source
        post.text_label = post.text_label or text_label
        post.image_label = post.image_label or image_label
        pred = session.get(Prediction, post.latest_prediction_id) if post.latest_prediction_id else None
        known = [c for c in (is_conflict_pair(post.text_label, post.image_label), pred.conflict if pred else None)
                 if c is not None]
        post.conflict = max(known) if known else None
        log.info("post #%d (an upload) is %s", post.id, source)
    session.flush()


def _require_post(session: Session, post_id: Any, lock: bool = False) -> Post:
    """The post, or AnnotationError. `lock`: SELECT ... FOR UPDATE (PostgreSQL), so that writers to
    one post take turns and its derived queue columns stay right; SQLite writers take turns anyway."""
    try:
        if isinstance(post_id, bool):
            raise TypeError
        post_id = operator.index(post_id)  # int, numpy integers
    except TypeError:
        raise AnnotationError(f"Post id must be an integer, got {post_id!r}") from None
    if not 1 <= post_id <= MAX_POST_ID:  # PostgreSQL cannot even compare a larger number with an id
        raise AnnotationError(f"No post with id {post_id} (ids are whole numbers from 1 to {MAX_POST_ID})")
    stmt = select(Post).where(Post.id == post_id)
    post = session.scalar(stmt.with_for_update() if lock else stmt)
    if post is None:
        raise AnnotationError(f"No post with id {post_id}")
    return post


def _refresh_dispute(session: Session, post_id: int) -> None:
    """Recompute posts.disputed after the post's labels or latest prediction changed."""
    labels = set(session.scalars(
        select(Annotation.label).where(Annotation.post_id == post_id, Annotation.kind == "label",
                                       is_latest(Annotation))
    ))
    model = session.scalar(
        select(Prediction.label).join(Post, Post.latest_prediction_id == Prediction.id).where(Post.id == post_id)
    )
    disputed = bool(labels) and len(labels | ({model} if model else set())) > 1
    newest = session.scalar(select(func.max(Annotation.id)).where(Annotation.post_id == post_id))
    session.execute(
        update(Post).where(Post.id == post_id).values(disputed=newest if disputed else None)
        .execution_options(synchronize_session=False)
    )


def get_post(session: Session, post_id: int, data_dir: Optional[Union[str, Path]] = None) -> dict[str, Any]:
    """A post as a dict: text, source, image paths, source labels, and its latest prediction."""
    post = _require_post(session, post_id)
    rel = image_relpath(post.image_sha256, post.image_ext or "") if post.image_sha256 else None
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    if rel:  # the data folder may have been wiped (a Space restart): restore the file from the database
        ensure_image_file(session, post.image_sha256, post.image_ext or "", root)
    pred = session.get(Prediction, post.latest_prediction_id) if post.latest_prediction_id else None
    return {
        "post_id": post.id,
        "text": post.text,
        "source": post.source,
        "image": rel,  # relative to the data directory
        "image_path": str((root / rel).absolute()) if rel else None,
        "text_label": post.text_label,
        "image_label": post.image_label,
        "conflict": post.conflict,
        "created_at": post.created_at.isoformat(),
        "set_aside": post.set_aside,  # None, or why the post left the queues ("image file missing")
        "prediction": prediction_dict(pred) if pred else None,
    }


# ---- predictions ---------------------------------------------------------------------------------

def _check_probs(probs: Union[Mapping[str, float], Sequence[float]]) -> tuple[float, float, float]:
    if isinstance(probs, Mapping):
        if set(probs) != set(LABELS):
            raise AnnotationError(f"Probabilities need exactly the keys {list(LABELS)}, got {sorted(probs)}")
        values = [probs[label] for label in LABELS]
    else:
        values = list(probs)
        if len(values) != len(LABELS):
            raise AnnotationError(f"Expected {len(LABELS)} probabilities in the order {list(LABELS)}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"Probabilities must be numbers, got {values!r}") from e
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in out):
        raise AnnotationError(f"Probabilities must lie in [0, 1], got {out}")
    if abs(sum(out) - 1.0) > PROB_TOLERANCE:
        raise AnnotationError(f"Probabilities must sum to 1, got {sum(out):.6f}")
    return out  # type: ignore[return-value]


def prediction_dict(pred: Prediction) -> dict[str, Any]:
    """A prediction row as plain values."""
    probs = {"negative": pred.p_negative, "neutral": pred.p_neutral, "positive": pred.p_positive}
    return {
        "prediction_id": pred.id,
        "post_id": pred.post_id,
        "model_version_id": pred.model_version_id,
        "model_name": pred.model_name,
        "label": pred.label,
        "probs": probs,
        "confidence": max(probs.values()),
        "conflict": pred.conflict,
        "created_at": pred.created_at.isoformat(),
    }


def record_prediction(
    session: Session,
    post_id: int,
    label: str,
    probs: Union[Mapping[str, float], Sequence[float]],
    model_version: Optional[str] = None,
    conflict: Optional[float] = None,
) -> int:
    """Record what a model said about a post; returns the prediction id.

    `probs` is a dict keyed by LABELS or a sequence in LABELS order. `model_version` is a model
    name; when it names a registered model version the row links to it. `conflict` in [0, 1] is the
    app's image-only vs text-only disagreement (feeds the `conflict` queue).
    """
    check_label(label)
    p_neg, p_neu, p_pos = _check_probs(probs)
    if conflict is not None and not (isinstance(conflict, (int, float)) and 0.0 <= conflict <= 1.0):
        raise AnnotationError(f"conflict must be a number in [0, 1], got {conflict!r}")
    post = _require_post(session, post_id, lock=True)
    mv_id = None
    if model_version is not None:
        mv_id = session.scalar(select(ModelVersion.id).where(ModelVersion.name == model_version))
    pred = Prediction(
        post_id=post.id, model_version_id=mv_id, model_name=model_version, label=label,
        p_negative=p_neg, p_neutral=p_neu, p_positive=p_pos, conflict=conflict,
    )
    session.add(pred)
    session.flush()
    known = [c for c in (is_conflict_pair(post.text_label, post.image_label), conflict) if c is not None]
    # Guarded on the id so that, under concurrent writers, the post keeps its newest prediction.
    session.execute(
        update(Post)
        .where(Post.id == post.id, or_(Post.latest_prediction_id.is_(None), Post.latest_prediction_id < pred.id))
        .values(latest_prediction_id=pred.id, confidence=max(p_neg, p_neu, p_pos),
                conflict=max(known) if known else None)
        .execution_options(synchronize_session=False)
    )
    _refresh_dispute(session, post.id)
    session.expire(post)
    return pred.id


# ---- annotators ----------------------------------------------------------------------------------

def annotator_id(session: Session, name: str, create: bool = False) -> Optional[int]:
    """The id of the annotator called `name` (stripped), creating them when `create`; else None."""
    name = check_annotator_name(name)
    found = session.scalar(select(Annotator.id).where(Annotator.name == name))
    if found is not None or not create:
        return found
    try:
        with session.begin_nested():
            row = Annotator(name=name)
            session.add(row)
        return row.id
    except IntegrityError:  # a concurrent session created the same name first
        return session.scalar(select(Annotator.id).where(Annotator.name == name))


def list_annotators(session: Session) -> list[dict[str, Any]]:
    """All annotators, oldest first."""
    rows = session.execute(select(Annotator).order_by(Annotator.id)).scalars()
    return [{"annotator_id": r.id, "name": r.name, "created_at": r.created_at.isoformat()} for r in rows]


# ---- corrections (append-only history) -----------------------------------------------------------

def _check_rationale(rationale: Optional[Sequence[str]]) -> Optional[list[str]]:
    if rationale is None:
        return None
    if isinstance(rationale, str) or not all(isinstance(w, str) for w in rationale):
        raise AnnotationError(f"Rationale must be a list of words, got {rationale!r}")
    return list(rationale)


def _append(session: Session, post_id: int, annotator: str, kind: str, **fields: Any) -> int:
    name = check_annotator_name(annotator)
    post_id = _require_post(session, post_id, lock=True).id
    shown = fields.get("shown_prediction_id")
    if shown is not None:
        pred = session.get(Prediction, shown)
        if pred is None or pred.post_id != post_id:
            raise AnnotationError(f"Prediction {shown} does not exist or is not for post {post_id}")
    row = Annotation(post_id=post_id, annotator_id=annotator_id(session, name, create=True), kind=kind, **fields)
    session.add(row)
    session.flush()
    _refresh_dispute(session, post_id)
    return row.id


def save_correction(
    session: Session,
    post_id: int,
    annotator: str,
    label: str,
    note: Optional[str] = None,
    rationale: Optional[Sequence[str]] = None,
    shown_prediction_id: Optional[int] = None,
) -> int:
    """Append the annotator's label for a post (a change of mind is a new row); returns its id.

    The annotator is created on first use. `rationale` is the list of words they marked;
    `shown_prediction_id` is the prediction they saw when deciding.
    """
    check_label(label)
    return _append(
        session, post_id, annotator, "label", label=label, note=check_note(note),
        rationale=_check_rationale(rationale), shown_prediction_id=shown_prediction_id,
    )


def skip(session: Session, post_id: int, annotator: str, note: Optional[str] = None) -> int:
    """Append a skip: the post leaves this annotator's queue and their label on it (if any) lapses."""
    return _append(session, post_id, annotator, "skip", note=check_note(note))


def undo_last(session: Session, annotator: str, post_id: Optional[int] = None) -> Optional[dict[str, Any]]:
    """Undo the annotator's most recent label or skip that is still in force (on `post_id` if given).

    Appends a `retract` row (nothing is deleted): the annotator then has no verdict on that post and
    it returns to their queue. Repeated calls walk further back. Returns the undone row as a dict
    with `retract_id` added, or None when there is nothing to undo.
    """
    aid = annotator_id(session, annotator)
    if aid is None:
        return None
    stmt = (
        select(Annotation)
        .where(Annotation.annotator_id == aid, Annotation.kind != "retract", is_latest(Annotation))
        .order_by(Annotation.id.desc())
        .limit(1)
    )
    if post_id is not None:
        stmt = stmt.where(Annotation.post_id == _require_post(session, post_id).id)
    row = session.scalar(stmt)
    if row is None:
        return None
    _require_post(session, row.post_id, lock=True)
    retract = Annotation(post_id=row.post_id, annotator_id=aid, kind="retract", note=f"undo of #{row.id}")
    session.add(retract)
    session.flush()
    _refresh_dispute(session, row.post_id)
    undone = _annotation_dict(row, check_annotator_name(annotator), current=False)
    return {**undone, "retract_id": retract.id}


def _annotation_dict(row: Annotation, name: str, current: bool) -> dict[str, Any]:
    return {
        "annotation_id": row.id,
        "post_id": row.post_id,
        "annotator": name,
        "kind": row.kind,
        "label": row.label,
        "note": row.note,
        "rationale": row.rationale,
        "shown_prediction_id": row.shown_prediction_id,
        "created_at": row.created_at.isoformat(),
        "current": current,  # True: this row is the annotator's verdict in force on the post
    }


def history(
    session: Session, post_id: Optional[int] = None, annotator: Optional[str] = None, limit: int = 50
) -> list[dict[str, Any]]:
    """History rows, newest first, optionally for one post and/or one annotator."""
    if not isinstance(limit, int) or limit < 1:
        raise AnnotationError(f"limit must be a positive integer, got {limit!r}")
    stmt = (
        select(Annotation, Annotator.name, is_latest(Annotation))
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .order_by(Annotation.id.desc())
        .limit(limit)
    )
    if post_id is not None:
        stmt = stmt.where(Annotation.post_id == _require_post(session, post_id).id)
    if annotator is not None:
        stmt = stmt.where(Annotator.name == check_annotator_name(annotator))
    return [
        _annotation_dict(row, name, current=bool(latest) and row.kind != "retract")
        for row, name, latest in session.execute(stmt)
    ]


def current_labels(session: Session, post_id: int) -> dict[str, str]:
    """{annotator name: label} of the labels in force on a post."""
    _require_post(session, post_id)
    stmt = (
        select(Annotator.name, Annotation.label)
        .join(Annotator, Annotator.id == Annotation.annotator_id)
        .where(Annotation.post_id == post_id, Annotation.kind == "label", is_latest(Annotation))
    )
    return {name: label for name, label in session.execute(stmt)}
