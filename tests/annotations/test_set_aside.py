"""A post whose image file is missing is set aside and never blocks the queue; progress counts."""
from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

import annotations as A
import annotations.queue as queue


@pytest.fixture
def broken(sessions, data_dir, jpeg):
    """Two posts; the first one every strategy would pick has lost its image file.

    post     created  prediction (max p)       labels                 image
    missing  first    negative 0.40, conflict .9  bob: positive (newest)  file deleted
    fine     second   negative 0.50, conflict .5  bob: positive           present
    """
    with sessions.begin() as s:
        missing = A.add_post(s, "missing", jpeg("missing"), data_dir=data_dir)
        fine = A.add_post(s, "fine", jpeg("fine"), data_dir=data_dir)
        A.record_prediction(s, missing, "negative", [0.40, 0.30, 0.30], conflict=0.9)
        A.record_prediction(s, fine, "negative", [0.50, 0.25, 0.25], conflict=0.5)
        A.save_correction(s, fine, "bob", "positive")
        A.save_correction(s, missing, "bob", "positive")  # the newest dispute
        path = Path(A.get_post(s, missing, data_dir)["image_path"])
    path.unlink()
    return missing, fine, path


@pytest.mark.parametrize("strategy", list(A.STRATEGIES))
def test_a_missing_image_does_not_block_any_strategy(sessions, data_dir, broken, strategy, caplog):
    missing, fine, _ = broken
    for seed in range(3):  # random: whichever post the pivot lands on
        with sessions() as s, caplog.at_level(logging.WARNING, logger="annotations.queue"):
            got = A.next_in_queue(s, "ana", strategy, data_dir=data_dir, rng=random.Random(seed))
        assert got["post_id"] == fine and got["set_aside"] is None
    assert f"post #{missing} set aside: image file missing" in caplog.text
    with sessions() as s:  # written in its own transaction once the reading session ended
        assert A.get_post(s, missing)["set_aside"] == "image file missing"
        assert [p["post_id"] for p in A.list_set_aside(s)] == [missing]
        assert A.progress(s, "ana") == {"done": 0, "skipped": 0, "remaining": 1, "total": 1}


def test_set_aside_survives_a_rolled_back_caller(sessions, data_dir, broken):
    missing, fine, _ = broken
    with pytest.raises(RuntimeError), sessions.begin() as s:
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)["post_id"] == fine
        raise RuntimeError("the caller's own work failed")
    with sessions() as s:
        assert A.get_post(s, missing)["set_aside"] == "image file missing"


def test_set_aside_posts_come_back(sessions, data_dir, broken, jpeg):
    missing, fine, path = broken
    with sessions() as s:
        A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)
    with sessions.begin() as s:
        assert A.recheck_set_aside(s, data_dir) == []  # still missing
        assert A.clear_set_aside(s, missing) and not A.clear_set_aside(s, missing)
    with sessions() as s:  # cleared by hand, but the file is still missing: set aside again
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)["post_id"] == fine
    path.write_bytes(jpeg("missing"))  # the file is restored from a backup
    with sessions.begin() as s:
        assert A.recheck_set_aside(s, data_dir) == [missing]
    with sessions() as s:
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)["post_id"] == missing


def test_many_missing_images_stop_with_a_clear_error(sessions, data_dir, jpeg, monkeypatch):
    monkeypatch.setattr(queue, "MAX_SET_ASIDE", 2)
    with sessions.begin() as s:
        posts = [A.add_post(s, f"p{i}", jpeg(f"p{i}"), data_dir=data_dir) for i in range(4)]
    for p in (data_dir / "images").rglob("*.jpg"):
        p.unlink()
    with sessions() as s, pytest.raises(A.AnnotationError, match="MMSA_DATA_DIR"):
        A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)
    with sessions() as s:
        assert [p["post_id"] for p in A.list_set_aside(s)] == list(reversed(posts[:3]))
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir) is None  # p3 set aside too


def test_text_only_posts_need_no_file(sessions, data_dir):
    with sessions.begin() as s:
        post = A.add_post(s, "just words", data_dir=data_dir)
    with sessions() as s:
        assert A.next_in_queue(s, "ana", "unseen", data_dir=data_dir)["post_id"] == post


def test_progress_keeps_skips_apart(sessions, data_dir):
    with sessions.begin() as s:
        posts = [A.add_post(s, f"p{i}", data_dir=data_dir) for i in range(5)]
        A.save_correction(s, posts[0], "ana", "positive")
        A.save_correction(s, posts[1], "ana", "neutral")
        A.save_correction(s, posts[1], "ana", "negative")  # a change of mind is still one done
        A.skip(s, posts[2], "ana")
        A.save_correction(s, posts[3], "ana", "positive")
        A.undo_last(s, "ana")  # posts[3] is open again
        A.save_correction(s, posts[0], "bob", "positive")
        A.set_aside(s, posts[4], "offensive")
    with sessions() as s:
        assert A.progress(s, "ana") == {"done": 2, "skipped": 1, "remaining": 1, "total": 4}
        assert A.progress(s, "nobody") == {"done": 0, "skipped": 0, "remaining": 4, "total": 4}
        for strategy in A.STRATEGIES:  # set aside: out of every queue
            got = A.next_in_queue(s, "cid", strategy, data_dir=data_dir, rng=random.Random(0))
            assert got is None or got["post_id"] != posts[4], strategy


def test_set_aside_reason_is_checked(sessions, data_dir, row_counts):
    with sessions.begin() as s:
        post = A.add_post(s, "x", data_dir=data_dir)
    with pytest.raises(A.AnnotationError, match="reason"), sessions.begin() as s:
        A.set_aside(s, post, " ")
    with sessions() as s:
        assert A.get_post(s, post)["set_aside"] is None
