"""Bad input gets a clear AnnotationError (a ValueError) and writes nothing."""
from __future__ import annotations

import pytest

import annotations as A
from annotations import AnnotationError


@pytest.fixture
def post(sessions, data_dir):
    with sessions.begin() as s:
        post = A.add_post(s, "a post", data_dir=data_dir)
        pred = A.record_prediction(s, post, "neutral", [0.2, 0.6, 0.2])
        A.save_correction(s, post, "ana", "neutral")
    return post, pred


def attempt(sessions, fn, *args, **kw):
    """Run fn in a transaction that would commit if fn returned; return the error raised."""
    with pytest.raises(AnnotationError) as info:
        with sessions.begin() as s:
            fn(s, *args, **kw)
    assert isinstance(info.value, ValueError)
    return str(info.value)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s, p, pr: A.save_correction(s, p, "ana", "happy"), "Unknown label 'happy'; choose from "
         "['negative', 'neutral', 'positive']"),
        (lambda s, p, pr: A.save_correction(s, p, "   ", "positive"), "Annotator name must be a non-empty"),
        (lambda s, p, pr: A.save_correction(s, p, "", "positive"), "Annotator name must be a non-empty"),
        (lambda s, p, pr: A.save_correction(s, p + 999, "new-person", "positive"), "No post with id"),
        (lambda s, p, pr: A.save_correction(s, "1", "ana", "positive"), "Post id must be an integer"),
        (lambda s, p, pr: A.save_correction(s, p, "ana", "positive", shown_prediction_id=pr + 5),
         "does not exist or is not for post"),
        (lambda s, p, pr: A.save_correction(s, p, "ana", "positive", rationale="sunny"), "list of words"),
        (lambda s, p, pr: A.skip(s, p + 999, "new-person"), "No post with id"),
        (lambda s, p, pr: A.record_prediction(s, p, "great", [0.2, 0.6, 0.2]), "Unknown label 'great'"),
        (lambda s, p, pr: A.record_prediction(s, p, "neutral", [0.2, 0.6, 0.5]), "must sum to 1"),
        (lambda s, p, pr: A.record_prediction(s, p, "neutral", [0.5, 0.5]), "Expected 3 probabilities"),
        (lambda s, p, pr: A.record_prediction(s, p, "neutral", {"neg": 1.0}), "exactly the keys"),
        (lambda s, p, pr: A.record_prediction(s, p + 999, "neutral", [0.2, 0.6, 0.2]), "No post with id"),
        (lambda s, p, pr: A.add_post(s, "x", "/no/such/image.jpg"), "Image file not found: /no/such/image.jpg"),
        (lambda s, p, pr: A.add_post(s, "x", b""), "Image is empty"),
        (lambda s, p, pr: A.add_post(s, "x", b"not an image"), "not a JPEG, PNG, GIF or WebP"),
        (lambda s, p, pr: A.add_post(s, "  "), "needs text or an image"),
        (lambda s, p, pr: A.add_post(s, "x", text_label="good"), "Unknown label 'good'"),
        (lambda s, p, pr: A.history(s, annotator=" "), "Annotator name must be a non-empty"),
        (lambda s, p, pr: A.history(s, post_id=p + 999), "No post with id"),
        (lambda s, p, pr: A.register_model_version(s, "m", "/no/such.pt"), "Checkpoint file not found"),
        (lambda s, p, pr: A.set_default_model(s, "nope"), "Unknown model version 'nope'; choose from"),
    ],
)
def test_bad_input_raises_and_writes_nothing(sessions, post, data_dir, row_counts, call, message):
    before = row_counts()
    images_before = sorted((data_dir / "images").rglob("*")) if (data_dir / "images").exists() else []
    assert message in attempt(sessions, call, *post)
    assert row_counts() == before
    images_after = sorted((data_dir / "images").rglob("*")) if (data_dir / "images").exists() else []
    assert images_after == images_before


def test_duplicate_model_name_is_refused(sessions, tmp_path, row_counts):
    with sessions.begin() as s:
        A.register_model_version(s, "m", tmp_path / "m.pt", checkpoint_sha256="a" * 64)
    before = row_counts()
    assert "already exists" in attempt(sessions, A.register_model_version, "m", "x.pt", "b" * 64)
    assert row_counts() == before


def test_database_constraints_back_up_the_checks(sessions, post):
    """Even a write that bypasses the store cannot store an unknown label or an empty name."""
    from sqlalchemy.exc import IntegrityError

    from annotations.models import Annotation, Annotator

    for row in (Annotator(name="  "), Annotation(post_id=post[0], annotator_id=1, kind="label", label="meh"),
                Annotation(post_id=post[0], annotator_id=1, kind="skip", label="neutral")):
        with pytest.raises(IntegrityError), sessions.begin() as s:
            s.add(row)
