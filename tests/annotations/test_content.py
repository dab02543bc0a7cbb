"""One post per content: the same image bytes and text are one post, whatever the source."""
from __future__ import annotations

import hashlib

from sqlalchemy import func, select

import annotations as A
from annotations.models import Annotation, Post


def test_the_same_post_saved_twice_is_one_post_with_two_annotations(sessions, data_dir, jpeg, row_counts):
    # What the Analyze tab does on every save: add the post, then save the annotator's label.
    saved = []
    for label in ("positive", "negative"):
        with sessions.begin() as s:
            post = A.add_post(s, "what a day", jpeg("day"), data_dir=data_dir)
            saved.append((post, A.save_correction(s, post, "ana", label, note=f"said {label}")))
    (first, _), (second, _) = saved
    assert first == second
    counts = row_counts()
    assert counts["posts"] == 1 and counts["annotations"] == 2
    with sessions() as s:
        assert A.current_labels(s, first) == {"ana": "negative"}  # the second save is a change of mind
        assert [r["note"] for r in A.history(s, post_id=first)] == ["said negative", "said positive"]


def test_what_counts_as_the_same_content(sessions, data_dir, jpeg):
    with sessions.begin() as s:
        base = A.add_post(s, "Caf\u00e9 time", jpeg("a"), data_dir=data_dir)
        assert A.add_post(s, "  Cafe\u0301 time\n", jpeg("a"), data_dir=data_dir) == base  # stripped, NFC
        assert A.add_post(s, "Caf\u00e9 time", jpeg("a"), "mvsa-single:5", data_dir) == base  # any source
        others = {A.add_post(s, "Caf\u00e9 time", jpeg("b"), data_dir=data_dir),  # another image
                  A.add_post(s, "cafe time", jpeg("a"), data_dir=data_dir),  # another text
                  A.add_post(s, "Caf\u00e9 time", data_dir=data_dir)}  # no image
        assert A.add_post(s, "Caf\u00e9 time ", data_dir=data_dir) in others  # text-only repeats too
        assert len(others | {base}) == 4
        assert s.scalar(select(func.count()).select_from(Post)) == 4


def test_ensure_post_says_whether_it_created_the_post(sessions, data_dir):
    with sessions.begin() as s:
        post, created = A.ensure_post(s, "hello", data_dir=data_dir)
        assert created and A.ensure_post(s, "hello", data_dir=data_dir) == (post, False)


def test_an_upload_found_by_a_data_set_import_takes_its_source(sessions, data_dir, jpeg):
    with sessions.begin() as s:
        upload = A.add_post(s, "happy valentine", jpeg("37"), data_dir=data_dir)
        A.record_prediction(s, upload, "positive", [0.1, 0.1, 0.8], conflict=0.25)
        A.save_correction(s, upload, "ana", "negative")
    rows = [{"id": "37", "text": "happy valentine", "split": "unlabeled", "text_label": "positive",
             "image_label": "negative"}]
    images = data_dir.parent / "mvsa"
    images.mkdir()
    (images / "37.jpg").write_bytes(jpeg("37"))
    assert A.import_posts(sessions, rows, data_dir, images, progress=False)["existing"] == 1
    assert A.import_posts(sessions, rows, data_dir, images, progress=False)["existing"] == 1  # idempotent
    with sessions() as s:
        post = A.get_post(s, upload)
        assert (post["source"], post["text_label"], post["image_label"]) == ("mvsa-single:37", "positive", "negative")
        assert post["conflict"] == 1.0  # the source's text+/image- conflict now counts for the queue
        assert s.scalar(select(func.count()).select_from(Post)) == 1
        assert s.scalar(select(func.count()).select_from(Annotation)) == 1


def test_adding_the_content_again_brings_a_missing_image_back(sessions, data_dir, jpeg):
    with sessions.begin() as s:
        post = A.add_post(s, "lost", jpeg("lost"), data_dir=data_dir)
        path = data_dir / A.get_post(s, post, data_dir)["image"]
        A.set_aside(s, post, "image file missing")
    path.unlink()
    with sessions.begin() as s:
        assert A.add_post(s, "lost", jpeg("lost"), data_dir=data_dir) == post
    assert path.read_bytes() == jpeg("lost")
    with sessions() as s:
        assert A.get_post(s, post)["set_aside"] is None
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)["post_id"] == post
    with sessions.begin() as s:  # set aside for another reason: adding it again changes nothing
        A.set_aside(s, post, "offensive")
        A.add_post(s, "lost", jpeg("lost"), data_dir=data_dir)
        assert A.get_post(s, post)["set_aside"] == "offensive"


def test_content_hash_is_stable():
    # Changing the hash would split every existing post from its future saves: a migration, not an edit.
    assert A.content_sha256(None, "hi") == hashlib.sha256(b"\nhi").hexdigest()
    assert A.content_sha256("a" * 64, "hi") == hashlib.sha256(b"a" * 64 + b"\nhi").hexdigest()
    assert A.content_sha256(None, " hi ") == A.content_sha256("", "hi")
    assert A.content_sha256("a" * 64, "hi") != A.content_sha256(None, "a" * 64 + "\nhi")
