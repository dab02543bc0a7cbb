"""Label counts and kappa against hand-computed values."""
from __future__ import annotations

import pytest

import annotations as A

ANA = ["positive", "positive", "negative", "neutral", "positive", "negative"]
BOB = ["positive", "negative", "negative", "neutral", "positive", "positive"]
# Observed agreement 4/6; both raters' marginals are positive 3, negative 2, neutral 1, so chance
# agreement is (9 + 4 + 1) / 36 = 14/36 and kappa = (24/36 - 14/36) / (22/36) = 5/11.
KAPPA = 5 / 11


def test_cohen_kappa_hand_computed():
    assert A.cohen_kappa(ANA, BOB) == pytest.approx(KAPPA)
    assert A.cohen_kappa([], []) is None
    assert A.cohen_kappa(["neutral"] * 3, ["neutral"] * 3) is None  # chance agreement is 1


def test_fleiss_kappa_wikipedia_example():
    # Fleiss (1971) worked example as on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210.
    table = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
    assert A.fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    assert A.fleiss_kappa([[1, 0, 0]]) is None  # one rater: not counted


def test_stats_from_the_store(sessions, data_dir):
    with sessions.begin() as s:
        posts = [A.add_post(s, f"p{i}", data_dir=data_dir) for i in range(7)]
        for p in posts[:6]:
            A.record_prediction(s, p, "positive", [0.1, 0.1, 0.8])
        A.save_correction(s, posts[1], "ana", "neutral")  # changed below: only the latest counts
        for p, a, b in zip(posts, ANA, BOB):
            A.save_correction(s, p, "ana", a)
            A.save_correction(s, p, "bob", b)
        A.save_correction(s, posts[0], "cid", "negative")
        A.undo_last(s, "cid")  # retracted: cid has no label in force
        A.skip(s, posts[6], "ana")
    with sessions() as s:
        got = A.stats(s)
    assert got["n_posts"] == 7 and got["n_labelled_posts"] == 6
    assert got["labels"] == {"negative": 4, "neutral": 2, "positive": 6}
    assert got["annotators"]["ana"] == {"labels": 6, "skips": 1, "remaining": 0, "adjudications": 0,
                                        "by_label": {"negative": 2, "neutral": 1, "positive": 3}}
    assert got["annotators"]["bob"]["remaining"] == 1  # post 6
    assert got["n_set_aside"] == 0 and got["review"] == {"disputed": 4, "pending": 4, "adjudicated": 0}
    assert "cid" not in got["annotators"]
    assert got["cohen_kappa"] == pytest.approx(KAPPA)
    assert got["cohen_pairs"] == [{"annotators": ["ana", "bob"], "n_posts": 6, "kappa": pytest.approx(KAPPA)}]
    # Two raters with equal marginals: Fleiss' kappa equals Cohen's here.
    assert got["fleiss_kappa"] == pytest.approx(KAPPA) and got["fleiss_n_posts"] == 6
    # The model says positive everywhere: 6 of 12 labels agree; kappa 0 (no better than chance).
    assert got["model_agreement"] == {"n": 12, "fraction": 0.5, "kappa": pytest.approx(0.0),
                                      "by_annotator": {"ana": 0.5, "bob": 0.5}}


def test_stats_on_an_empty_database(sessions):
    with sessions() as s:
        got = A.stats(s)
    assert got["labels"] == {"negative": 0, "neutral": 0, "positive": 0}
    assert got["cohen_kappa"] is None and got["fleiss_kappa"] is None
    assert got["model_agreement"] == {"n": 0, "fraction": None, "kappa": None, "by_annotator": {}}
