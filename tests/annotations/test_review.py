"""Review: disputed posts side by side, majorities and ties, adjudication as the final label."""
from __future__ import annotations

import pytest

import annotations as A


@pytest.fixture
def disputes(sessions, data_dir):
    """post  model     labels in force
    tie    positive  ana: positive "bright", bob: negative "irony"      (1:1 tie; the newest dispute)
    major  neutral   ana: negative, bob: negative, cid: positive         (2:1 majority negative)
    calm   positive  ana: positive                                       (agrees: not disputed)
    """
    with sessions.begin() as s:
        major = A.add_post(s, "major", data_dir=data_dir)
        calm = A.add_post(s, "calm", data_dir=data_dir)
        tie = A.add_post(s, "tie", data_dir=data_dir)
        A.record_prediction(s, tie, "positive", [0.1, 0.2, 0.7])
        A.record_prediction(s, major, "neutral", [0.3, 0.4, 0.3])
        A.record_prediction(s, calm, "positive", [0.1, 0.1, 0.8])
        for name, label in (("ana", "negative"), ("bob", "negative"), ("cid", "positive")):
            A.save_correction(s, major, name, label)
        A.save_correction(s, calm, "ana", "positive")
        A.save_correction(s, tie, "ana", "positive", note="bright")
        A.save_correction(s, tie, "bob", "negative", note="irony")
    return {"tie": tie, "major": major, "calm": calm}


def test_majority():
    assert A.majority(["positive", "negative", "positive"]) == ("positive", False)
    assert A.majority(["positive", "negative"]) == (None, True)
    assert A.majority([]) == (None, False)


def test_disputed_posts_side_by_side(sessions, disputes, data_dir):
    with sessions() as s:
        items = A.disputed_posts(s, data_dir=data_dir)
        assert A.review_counts(s) == {"disputed": 2, "pending": 2, "adjudicated": 0}
    assert [i["post_id"] for i in items] == [disputes["tie"], disputes["major"]]  # newest dispute first
    tie, major = items
    assert [(r["annotator"], r["label"], r["note"]) for r in tie["labels"]] == [
        ("ana", "positive", "bright"), ("bob", "negative", "irony")]
    assert all(r["labelled_at"].endswith("+00:00") for r in tie["labels"])
    assert tie["majority"] is None and tie["tie"] and tie["final_label"] is None
    assert tie["prediction"]["label"] == "positive" and tie["annotators_disagree"] and tie["model_disagrees"]
    assert tie["votes"] == {"negative": 1, "neutral": 0, "positive": 1} and tie["text"] == "tie"
    assert major["majority"] == "negative" and not major["tie"] and major["final_label"] == "negative"
    assert major["adjudication"] is None and major["n_votes"] == 3
    with sessions() as s:
        assert [i["post_id"] for i in A.disputed_posts(s, limit=1, offset=1)] == [disputes["major"]]


def test_adjudication_is_the_final_label(sessions, disputes):
    with sessions.begin() as s:
        first = A.adjudicate(s, disputes["tie"], "rita", "positive", note="the photo is bright")
        second = A.adjudicate(s, disputes["tie"], "rita", "negative", note="irony after all")  # supersedes
    assert second > first
    with sessions() as s:
        assert [i["post_id"] for i in A.disputed_posts(s)] == [disputes["major"]]  # settled: off the to-do list
        [item] = [i for i in A.disputed_posts(s, include_adjudicated=True) if i["post_id"] == disputes["tie"]]
        assert A.review_counts(s) == {"disputed": 2, "pending": 1, "adjudicated": 1}
        assert A.stats(s)["annotators"]["rita"]["adjudications"] == 1
    adj = item["adjudication"]
    assert (adj["reviewer"], adj["label"], adj["note"], adj["outdated"]) == ("rita", "negative", "irony after all",
                                                                            False)
    assert item["tie"] and item["majority"] is None  # the votes stay as they were
    assert item["adjudicated"] == item["final_label"] == "negative"


def test_labels_after_the_decision_mark_it_outdated(sessions, disputes):
    with sessions.begin() as s:
        A.adjudicate(s, disputes["major"], "rita", "neutral")
    with sessions.begin() as s:
        A.save_correction(s, disputes["major"], "dan", "positive")
    with sessions() as s:
        item = A.review_post(s, disputes["major"])
    assert item["adjudication"]["outdated"] and item["final_label"] == "neutral"


def test_disagreement_queue_skips_adjudicated_posts(sessions, disputes):
    with sessions.begin() as s:
        A.adjudicate(s, disputes["tie"], "rita", "negative")
    with sessions() as s:
        assert A.next_in_queue(s, "dan", "disagreement")["post_id"] == disputes["major"]


def test_any_post_may_be_adjudicated(sessions, disputes):
    with sessions.begin() as s:
        A.adjudicate(s, disputes["calm"], "rita", "neutral")
        item = A.review_post(s, disputes["calm"])
    assert item["majority"] == "positive" and item["final_label"] == "neutral"


@pytest.mark.parametrize("args, message", [
    (("rita", "great"), "Unknown label 'great'"),
    (("  ", "neutral"), "Annotator name must be a non-empty"),
    (("rita", "neutral", 5), "Note must be a string"),
])
def test_bad_adjudications_write_nothing(sessions, disputes, row_counts, args, message):
    before = row_counts()
    with pytest.raises(A.AnnotationError, match=message), sessions.begin() as s:
        A.adjudicate(s, disputes["tie"], *args)
    with pytest.raises(A.AnnotationError, match="No post with id"), sessions.begin() as s:
        A.adjudicate(s, 999, "rita", "neutral")
    assert row_counts() == before
