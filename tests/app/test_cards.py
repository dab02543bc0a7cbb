"""The HTML cards: every user string escaped, long texts collapsed, caveats routed to what they qualify."""
from __future__ import annotations

import pytest

from webapp.cards import (PREVIEW_CHARS, crop_caption, explaining_card, explanation_card, post_card, progress_html,
                          split_notes, suggestion_html, text_html, verdict_html, word_spans)
from webapp.formatting import heatmap_markdown, method_label, modality_markdown, word_legend

EVIL = '<img src=x onerror="window.__xss=1"> ${window.__xss=2} {{constructor}} \'quoted\' & more'
SAFE = "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;"


def test_a_post_card_escapes_its_text_and_names_its_post():
    card = post_card(7, EVIL, "data:image/jpeg;base64,AAAA")
    assert 'data-post="7"' in card and "Post #7" in card and SAFE in card and "<img src=x" not in card
    assert "&#x27;quoted&#x27; &amp; more" in card and 'src="data:image/jpeg;base64,AAAA"' in card


def test_a_long_text_shows_its_start_and_the_rest_behind_show_all():
    short, long = text_html("short"), text_html("word " * 2_000)
    assert "<details" not in short
    preview = long[long.index('"mmsa-preview">') + 15:long.index("…</span>")]
    assert "show all (10,000 characters)" in long and preview == ("word " * 2_000)[:PREVIEW_CHARS]
    assert long.count("word") == 2_000 + PREVIEW_CHARS // 5  # the whole text once, behind "show all"


def test_progress_suggestion_and_words_escape_what_they_show():
    bar = progress_html(EVIL, {"done": 2, "skipped": 1, "remaining": 1, "total": 4}, "unseen")
    assert SAFE in bar and "2 done · 1 skipped · 1 remaining of 4" in bar and 'style="width:50.00%"' in bar
    suggestion = suggestion_html(3, {"label": "negative", "probs": {"negative": 0.7, "neutral": 0.2,
                                                                    "positive": 0.1}}, EVIL, conflict=0.8)
    assert SAFE in suggestion and "suggests <strong>negative</strong>" in suggestion
    assert "model's text-only and image-only views point opposite ways" in suggestion


def test_the_conflict_flag_says_whose_it_is():
    pred = {"label": "positive", "probs": {"negative": 0.1, "neutral": 0.1, "positive": 0.8}}
    source = suggestion_html(6, pred, "default", 1.0, "positive", "negative")
    assert "The source labels the text positive and the image negative" in source and "not the model" in source
    assert "views point opposite ways" not in source
    assert "conflict" not in suggestion_html(6, pred, "default", 0.0, "positive", "neutral")
    assert "model's text-only" in suggestion_html(6, pred, "default", 0.9, "positive", "neutral")
    words = word_spans([(EVIL, 0.5)] + [("w", -0.1)] * 100, limit=80)
    assert SAFE in words and "show all 101 words" in words


def test_a_verdict_shows_every_label_side_by_side_escaped():
    item = {"post_id": 4, "labels": [
        {"annotator": EVIL, "label": "negative", "note": EVIL, "labelled_at": "2026-11-23T10:00:00"},
        {"annotator": "bob", "label": "positive", "note": None, "labelled_at": "2026-11-23T10:01:00"}],
        "votes": {"negative": 1, "neutral": 0, "positive": 1}, "tie": True, "majority": None,
        "prediction": {"model_name": "default", "label": "neutral", "probs": {"negative": 0.2, "neutral": 0.5,
                                                                            "positive": 0.3}},
        "adjudication": {"label": "neutral", "reviewer": "rita", "note": EVIL, "adjudicated_at": "2026-11-23T11:00",
                         "outdated": True}}
    html = verdict_html(item)
    assert html.count(SAFE) == 3 and "<img src=x" not in html
    assert "Tie: 1 negative · 1 positive" in html and "predicts <strong>neutral</strong> (50%)" in html
    assert "Final label <strong>neutral</strong> by rita" in html and "after this decision" in html


NOTES = ["The text-only and image-only views are approximate: this model was not trained with a missing modality "
         "(modality_dropout=0).", "3 trailing word(s) lie beyond max_text_len=64 tokens: the model never read them "
         "(score 0).", "The GradCAM heatmap is flat: no region raises the class score at the target layer.",
         "EigenCAM is class-agnostic: the heatmap is the same whatever the target class.",
         "Word attention is the members' mean attention weight per word: where the head looked."]


def test_each_caveat_stands_next_to_what_it_qualifies():
    parts = split_notes(NOTES)
    assert parts["views"] == NOTES[:1] and parts["heatmap"] == NOTES[2:4] and parts["words"] == [NOTES[1], NOTES[4]]
    summary = {"notes": NOTES, "target": "positive", "crop_box": [10, 0, 90, 100], "heatmap_shape": [100, 100],
               "truncated_words": 3, "word_scores": [["good", 0.4]], "word_attention": None,
               "modality": {"shares": {"text": 0.6, "image": 0.4}, "text_label": "positive", "image_label": "negative",
                            "conflict": True}, "method": "GradCAM", "elapsed_ms": 900}
    assert "centre crop (80% of the image)" in crop_caption(summary) and crop_caption({**summary, "crop_box": [
        0, 0, 100, 100]}) == ""
    assert "heatmap is flat" in heatmap_markdown(summary) and "centre crop" in heatmap_markdown(summary)
    assert "max\\_text\\_len" in word_legend(summary, "attribution (integrated gradients)")
    assert "approximate" in modality_markdown(summary["modality"], "positive", NOTES)
    card = explanation_card(5, summary, None)
    assert "Heatmap and words for post #5" in card and "⚠ Conflict" in card and "never seen" in card
    assert card.index("⚠ Conflict") < card.index("mmsa-expl-body")  # the flag comes first
    assert "Explaining post #5" in explaining_card(5) and 'data-post="5"' in explaining_card(5)


@pytest.mark.parametrize("method, slow, label", [("GradCAM", False, "GradCAM (~1.3 s on CPU)"),
                                                 ("ScoreCAM", True, "ScoreCAM (slow, ~2.5 min on CPU, admins only)"),
                                                 ("NewCAM", False, "NewCAM")])
def test_the_method_selector_says_how_slow_each_method_is(method, slow, label, monkeypatch):
    from webapp import formatting

    monkeypatch.setattr(formatting, "METHOD_SECONDS", {"GradCAM": 1.3, "ScoreCAM": 150.0})  # seconds and minutes
    assert method_label(method, slow) == label
