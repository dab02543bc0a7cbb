"""Each queue strategy picks the expected post on a small hand-built database."""
from __future__ import annotations

import random

import pytest

import annotations as A


@pytest.fixture
def db(sessions, data_dir):
    """Five posts; posts 0-3 have predictions, 4 has none.

    post  prediction (max p)          source labels        labels
    0     positive 0.90               -                    bob: positive (agrees)
    1     negative 0.40               -                    bob: positive (disagrees with model)
    2     neutral  0.50               text+ / image-       -
    3     positive 0.60, conflict .7  -                    bob: neutral, cid: positive (annotators differ)
    4     -                           -                    -
    """
    with sessions.begin() as s:
        ids = [A.add_post(s, f"post {i}", data_dir=data_dir) for i in range(2)]
        ids.append(A.add_post(s, "post 2", source="mvsa-single:2", data_dir=data_dir,
                              text_label="positive", image_label="negative"))
        ids += [A.add_post(s, f"post {i}", data_dir=data_dir) for i in (3, 4)]
        A.record_prediction(s, ids[0], "positive", [0.05, 0.05, 0.90])
        A.record_prediction(s, ids[1], "negative", [0.40, 0.30, 0.30])
        A.record_prediction(s, ids[2], "neutral", [0.25, 0.50, 0.25])
        A.record_prediction(s, ids[3], "positive", [0.1, 0.3, 0.6], conflict=0.7)
        A.save_correction(s, ids[0], "bob", "positive")
        A.save_correction(s, ids[1], "bob", "positive")
        A.save_correction(s, ids[3], "bob", "neutral")
        A.save_correction(s, ids[3], "cid", "positive")
    return ids


def pick(sessions, annotator, strategy, **kw):
    with sessions() as s:
        got = A.next_in_queue(s, annotator, strategy, **kw)
    return None if got is None else got["post_id"]


def test_least_confident_lowest_max_prob_first(sessions, db):
    assert pick(sessions, "ana", "least_confident") == db[1]  # 0.40


def test_least_confident_falls_back_to_unpredicted(sessions, db):
    with sessions.begin() as s:
        for p in db[:4]:
            A.save_correction(s, p, "ana", "neutral")
    assert pick(sessions, "ana", "least_confident") == db[4]


def test_disagreement_model_or_annotators(sessions, db):
    # Newest dispute first: post 3 (bob vs cid, and bob vs model), then post 1 (bob vs model).
    assert pick(sessions, "ana", "disagreement") == db[3]
    with sessions.begin() as s:
        A.save_correction(s, db[3], "ana", "positive")
    assert pick(sessions, "ana", "disagreement") == db[1]
    with sessions.begin() as s:
        A.skip(s, db[1], "ana")
    assert pick(sessions, "ana", "disagreement") is None  # post 0: bob agrees with the model


def test_disagreement_follows_new_predictions(sessions, db):
    with sessions.begin() as s:
        A.record_prediction(s, db[1], "positive", [0.1, 0.1, 0.8])  # the model now agrees with bob
        A.save_correction(s, db[3], "ana", "positive")
    assert pick(sessions, "ana", "disagreement") is None
    with sessions.begin() as s:
        A.record_prediction(s, db[0], "neutral", [0.1, 0.8, 0.1])  # and now disagrees on post 0
    assert pick(sessions, "ana", "disagreement") == db[0]


def test_disagreement_ignores_retracted_labels(sessions, db):
    with sessions.begin() as s:
        A.undo_last(s, "cid")
        A.undo_last(s, "bob")  # bob's post-3 label; post 3 is now undisputed
    assert pick(sessions, "ana", "disagreement") == db[1]


def test_conflict_highest_first(sessions, db):
    assert pick(sessions, "ana", "conflict") == db[2]  # source text+ / image- -> 1.0
    with sessions.begin() as s:
        A.save_correction(s, db[2], "ana", "neutral")
    assert pick(sessions, "ana", "conflict") == db[3]  # prediction conflict 0.7
    with sessions.begin() as s:
        A.save_correction(s, db[3], "ana", "neutral")
    assert pick(sessions, "ana", "conflict") is None


def test_unseen_is_per_annotator(sessions, db):
    assert pick(sessions, "ana", "unseen") == db[0]
    assert pick(sessions, "bob", "unseen") == db[2]  # bob labelled 0, 1 and 3


def test_random_only_returns_open_posts(sessions, db):
    rng = random.Random(0)
    seen = {pick(sessions, "bob", "random", rng=rng) for _ in range(30)}
    assert seen == {db[2], db[4]}


def test_every_strategy_excludes_labelled_and_skipped(sessions, db):
    with sessions.begin() as s:
        for p in db[:4]:
            A.save_correction(s, p, "ana", "positive")
        A.skip(s, db[4], "ana")
    for strategy in A.STRATEGIES:
        assert pick(sessions, "ana", strategy) is None, strategy


def test_queue_item_has_post_and_prediction(sessions, db, data_dir):
    with sessions() as s:
        item = A.next_in_queue(s, "ana", "least_confident", data_dir=data_dir)
    assert item["strategy"] == "least_confident" and item["text"] == "post 1"
    assert item["prediction"]["label"] == "negative" and item["prediction"]["probs"]["negative"] == 0.4


def test_unknown_strategy_lists_the_menu(sessions, db):
    with sessions() as s, pytest.raises(ValueError, match="least_confident.*disagreement.*random"):
        A.next_in_queue(s, "ana", "hardest")


def test_exclude_skips_the_post_on_screen_and_is_open_says_whether_it_is_still_queued(sessions, db):
    first = pick(sessions, "ana", "least_confident")
    after = pick(sessions, "ana", "least_confident", exclude=[first])
    assert first == db[1] and after not in (None, first) and after == db[2]  # 0.40, then 0.50
    assert pick(sessions, "ana", "unseen", exclude=db) is None
    with sessions() as s:
        assert A.is_open(s, "ana", first) and A.is_open(s, "new-person", first)
        assert not A.is_open(s, "bob", db[0]) and not A.is_open(s, "ana", 10**9)
    with sessions.begin() as s:
        A.save_correction(s, first, "ana", "neutral")
    with sessions.begin() as s:
        assert not A.is_open(s, "ana", first)
        A.skip(s, after, "ana")
        assert not A.is_open(s, "ana", after)
        A.undo_last(s, "ana")
        assert A.is_open(s, "ana", after)
        A.set_aside(s, after, "image file missing")
        assert not A.is_open(s, "ana", after)
