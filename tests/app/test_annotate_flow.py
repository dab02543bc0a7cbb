"""The Annotate handlers without a browser: an explanation for a post no longer on screen is dropped, the panel
names the new post in the same response as the post, and the next post prepared in the background is shown
only while it is still open for the annotator. Requests are stand-ins carrying a Gradio session hash."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

import annotations as A
from webapp.annotate import AnnotateHandlers

NAMES = ("stale-ana", "prefetch-ana", "no-session-ana")


@pytest.fixture(scope="module", autouse=True)
def own_posts(ctx, example):
    """Six fresh posts are all these annotators have left (every older post skipped for them), so that the
    other tests' posts keep only the labels those tests give them."""
    with ctx.sessions.begin() as s:
        fresh = [A.add_post(s, f"flow post {i}: {example[1]}", example[0], data_dir=ctx.settings.data_dir)
                 for i in range(6)]
    with ctx.sessions.begin() as s:
        for name in NAMES:
            for post in range(1, fresh[0]):
                if A.is_open(s, name, post):
                    A.skip(s, post, name)
    return fresh


def request(session: str):
    return SimpleNamespace(session_hash=session, headers={}, username=None, client=SimpleNamespace(host="127.0.0.1"))


def test_an_explanation_for_a_post_no_longer_on_screen_is_dropped(ctx):
    h, req = AnnotateHandlers(ctx), request("s-stale")
    first = h.next_post("stale-ana", "unseen", "", request=req)
    pid, state = first[0], first[9]
    assert f'data-post="{pid}"' in first[1] and f"Explaining post #{pid}" in first[4]
    card = h.explain(state, "", request=req)
    assert f'data-post="{pid}"' in card and f"Heatmap and words for post #{pid}" in card
    after = h.label("stale-ana", pid, "neutral", "", "unseen", "", state, request=req)
    assert after[0] != pid and f"post #{after[0]}" in after[4]  # the panel names the new post at once
    assert h.explain(state, "", request=req) == gr.skip()  # the old post's explanation is not shown
    assert f"Heatmap and words for post #{after[0]}" in h.explain(after[9], "", request=req)
    assert h.explain(state, "", request=request("another-tab")) != gr.skip()  # other sessions are their own


def test_the_next_post_is_prepared_ahead_and_checked_before_it_is_shown(ctx):
    h, req, name = AnnotateHandlers(ctx), request("s-prefetch"), "prefetch-ana"
    first = h.next_post(name, "unseen", "", request=req)
    pid = first[0]
    ready = h.screens.peek_next("s-prefetch", after=pid).result(timeout=60)
    assert ready.post_id != pid and f'data-post="{ready.post_id}"' in ready.card
    with ctx.sessions() as s:  # its prediction is recorded already
        assert A.get_post(s, ready.post_id)["prediction"]["prediction_id"] == ready.pred["prediction_id"]
    after = h.label(name, pid, "positive", "", "unseen", "", first[9], request=req)
    assert after[0] == ready.post_id and after[1] == ready.card  # the prepared card, as it was made
    upcoming = h.screens.peek_next("s-prefetch", after=after[0]).result(timeout=60)
    with ctx.sessions.begin() as s:  # meanwhile the same annotator labels it in another tab
        A.save_correction(s, upcoming.post_id, name, "negative")
    later = h.label(name, after[0], "neutral", "", "unseen", "", after[9], request=req)
    assert later[0] not in (None, upcoming.post_id, after[0])  # no longer open: not shown again
    with ctx.sessions() as s:
        assert A.is_open(s, name, later[0])


def test_without_a_session_the_queue_still_works_and_nothing_is_prepared(ctx):
    h = AnnotateHandlers(ctx)
    first = h.next_post("no-session-ana", "unseen", "")
    after = h.skip("no-session-ana", first[0], "unseen", "")
    assert after[0] != first[0] and "Skipped" in after[7] and not h.screens.peek_next(None, after=first[0])


def test_opening_the_tab_without_a_name_says_what_is_missing(ctx):
    out = AnnotateHandlers(ctx).open_tab("", "unseen", "", None, request=request("s-noname"))
    assert out[0] is None and "Type your name" in out[1]
