"""HTML and Markdown typed into names, notes and post texts show as text on every tab, in headless Chromium: no
element, link, remote image request or script comes of them (nor of ``${...}`` in the HTML cards' templates).
Names that today's rules refuse are written straight into the database, as an older version could have stored
them."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from annotations import add_post, save_correction

from .test_browser import ARGS, CHROMIUM, open_page, wait_text

NAME = "browser-esc"
EVIL_NAMES = ['<img src=x onerror="window.__xss=1">', "[click](javascript:window.__xss=2)", "www.evil.example",
              "**loud**"]
NOTE = ('<img src=x onerror="window.__xss=3"> [x](javascript:window.__xss=4) ![](http://127.0.0.1:9/beacon.png) '
        "**bold** $$x^2$$")

TEXT = ('<img src=x onerror="window.__xss=5"> ${window.__xss=6} {{constructor.constructor}} '
        "[x](javascript:window.__xss=7) **bold**")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium")


@pytest.fixture(scope="module")
def legacy_names(ctx):
    """Two old annotators with HTML / Markdown names label the same post (the Dashboard pairs them)."""
    with ctx.sessions.begin() as s:
        post = add_post(s, "a post two old annotators labelled", data_dir=ctx.settings.data_dir)
        for name in EVIL_NAMES:
            s.execute(text("INSERT INTO annotators (name, created_at) VALUES (:n, '2024-01-01 00:00:00')"),
                      {"n": name})
            aid = s.execute(text("SELECT id FROM annotators WHERE name = :n"), {"n": name}).scalar()
            s.execute(text("INSERT INTO annotations (post_id, annotator_id, kind, label, note, created_at) VALUES "
                           "(:p, :a, 'label', 'negative', :note, '2024-01-01 00:00:00')"),
                      {"p": post, "a": aid, "note": NOTE})
        save_correction(s, post, NAME, "positive", note=NOTE)  # shows in NAME's history on the Annotate tab
        hostile = add_post(s, TEXT, data_dir=ctx.settings.data_dir)  # the newest dispute: first on the Review tab
        save_correction(s, hostile, "esc-a", "negative", note=NOTE)
        save_correction(s, hostile, "esc-b", "positive", note=NOTE)
    return post, hostile


@pytest.fixture(scope="module")
def page(server, legacy_names):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = open_page(browser, server, NAME)
        page.requests = []
        page.on("request", lambda r: page.requests.append(r.url))
        yield page
        browser.close()


def assert_inert(page, selector: str) -> str:
    """The element's text; it holds no element that a typed string could have created (the app's own bold
    labels and numbers aside)."""
    created = page.eval_on_selector(selector, "e => [...e.querySelectorAll('img, a, em, script, iframe, .katex')]"
                                              ".map(x => x.outerHTML)")
    assert created == []
    bold = page.eval_on_selector(selector, "e => [...e.querySelectorAll('strong')].map(x => x.innerText)")
    assert not {"bold", "loud"} & set(bold)
    assert page.evaluate("window.__xss") is None
    return page.inner_text(selector)


def test_analyze_confirmation_shows_the_note_as_text(page, example):
    page.locator("#analyze-image input[type=file]").set_input_files(example[0])
    page.fill("#analyze-text textarea", example[1])
    page.wait_for_selector("#analyze-image img")
    page.fill("textarea[placeholder='why, e.g. sarcasm']", NOTE)
    page.click("#analyze-negative")
    wait_text(page, "#analyze-saved", "Saved correction")
    shown = assert_inert(page, "#analyze-saved")
    assert '<img src=x onerror="window.__xss=3">' in shown and "![](http://127.0.0.1:9/beacon.png)" in shown
    assert "**bold**" in shown and NAME in shown


def test_annotate_history_shows_notes_as_text(page):
    page.get_by_role("tab", name="Annotate").click()
    page.click("#annotate-next")
    wait_text(page, "#annotate-progress", "remaining")
    assert NAME in assert_inert(page, "#annotate-progress")
    wait_text(page, "body", "window.__xss=4")
    history = page.locator("text=Your recent history").locator("xpath=ancestor::*[contains(@class, 'block')][1]")
    assert history.locator("img, a").count() == 0
    assert "[x](javascript:window.__xss=4)" in history.inner_text()


def test_dashboard_shows_names_as_text(page):
    page.get_by_role("tab", name="Dashboard").click()
    wait_text(page, "#dashboard-agreement", "Pairs")
    agreement = assert_inert(page, "#dashboard-agreement")
    for name in EVIL_NAMES:
        assert name in agreement
    annotators = assert_inert(page, "#dashboard-annotators")
    assert EVIL_NAMES[0] in annotators and EVIL_NAMES[1] in annotators
    assert page.evaluate("window.__xss") is None
    assert not [u for u in page.requests if "beacon" in u or "evil.example" in u or u.endswith("/x")]


def test_review_shows_texts_names_and_notes_as_text(page, ctx, legacy_names):
    with ctx.sessions.begin() as s:  # a third opinion: the newest dispute, so the Review tab opens on it
        save_correction(s, legacy_names[1], "esc-c", "neutral", note=NOTE)
    page.get_by_role("tab", name="Review").click()
    wait_text(page, "#review-verdict", "esc-c")
    card = assert_inert(page, "#review-card")
    assert TEXT.replace("  ", " ") in card.replace("\n", " ")
    verdict = assert_inert(page, "#review-verdict")
    assert '<img src=x onerror="window.__xss=3">' in verdict and "esc-a" in verdict
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
