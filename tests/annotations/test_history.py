"""The correction history is append-only: changes, skips and undos add rows; the latest counts."""
from __future__ import annotations

import pytest

import annotations as A


@pytest.fixture
def posts(sessions, data_dir):
    with sessions.begin() as s:
        return [A.add_post(s, f"post {i}", data_dir=data_dir) for i in range(3)]


def test_change_of_mind_is_a_new_row_and_latest_counts(sessions, posts, row_counts):
    p = posts[0]
    with sessions.begin() as s:
        first = A.save_correction(s, p, "ana", "positive")
    with sessions.begin() as s:
        second = A.save_correction(s, p, "ana", "negative", note="misread it")
    with sessions() as s:
        rows = A.history(s, post_id=p)
        assert [r["annotation_id"] for r in rows] == [second, first]  # newest first
        assert [r["current"] for r in rows] == [True, False]
        assert A.current_labels(s, p) == {"ana": "negative"}
        assert A.stats(s)["labels"] == {"negative": 1, "neutral": 0, "positive": 0}
    assert row_counts()["annotations"] == 2


def test_undo_appends_a_retract_and_walks_back(sessions, posts, row_counts):
    with sessions.begin() as s:
        A.save_correction(s, posts[0], "ana", "positive")
        A.save_correction(s, posts[1], "ana", "neutral")
        A.save_correction(s, posts[1], "bob", "negative")
    with sessions.begin() as s:
        undone = A.undo_last(s, "ana")
    assert undone["post_id"] == posts[1] and undone["label"] == "neutral" and undone["retract_id"]
    with sessions.begin() as s:
        assert A.undo_last(s, "ana")["post_id"] == posts[0]
        assert A.undo_last(s, "ana") is None  # nothing left in force
        assert A.undo_last(s, "nobody") is None
    with sessions() as s:
        assert A.current_labels(s, posts[1]) == {"bob": "negative"}  # bob untouched
        assert A.current_labels(s, posts[0]) == {}
        kinds = [r["kind"] for r in A.history(s, annotator="ana")]
    assert kinds == ["retract", "retract", "label", "label"]
    assert row_counts()["annotations"] == 5  # 3 labels + 2 retracts, nothing deleted


def test_undo_of_a_change_of_mind_withdraws_the_verdict(sessions, posts):
    p = posts[0]
    with sessions.begin() as s:
        A.save_correction(s, p, "ana", "positive")
        A.save_correction(s, p, "ana", "negative")
        A.undo_last(s, "ana", post_id=p)
        assert A.current_labels(s, p) == {}
        assert A.next_in_queue(s, "ana", "unseen")["post_id"] == p  # back in the queue
        A.save_correction(s, p, "ana", "neutral")  # a label after an undo counts again
        assert A.current_labels(s, p) == {"ana": "neutral"}


def test_skip_leaves_queue_and_undo_brings_it_back(sessions, posts):
    with sessions.begin() as s:
        A.skip(s, posts[0], "ana", note="unreadable")
        assert A.next_in_queue(s, "ana", "unseen")["post_id"] == posts[1]
        assert A.history(s, annotator="ana")[0]["kind"] == "skip"
        assert A.undo_last(s, "ana")["kind"] == "skip"
        assert A.next_in_queue(s, "ana", "unseen")["post_id"] == posts[0]


def test_history_filters_and_limit(sessions, posts):
    with sessions.begin() as s:
        for p in posts:
            A.save_correction(s, p, "ana", "positive")
            A.save_correction(s, p, "bob", "negative")
    with sessions() as s:
        assert len(A.history(s)) == 6
        assert len(A.history(s, limit=2)) == 2
        assert {r["annotator"] for r in A.history(s, annotator="bob")} == {"bob"}
        assert [r["annotator"] for r in A.history(s, post_id=posts[0], annotator="ana")] == ["ana"]
        assert A.history(s, annotator="nobody") == []
