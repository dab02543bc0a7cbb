"""The annotation loop in headless Chromium, as an annotator works in it: the explanation on screen always
belongs to the post on screen while labelling one post every 0.5 s; Esc then 1 labels; a reload keeps the
name, the queue and the tab; at 1280x800 the post and the label buttons fit without scrolling, at 390 px
wide the page stacks, and a 10,000-character text stays short; a reviewer records a final label.

MMSA_SCREENSHOT_DIR=docs/img saves the Annotate and Review screenshots of the README."""
from __future__ import annotations

import random
import time

import pytest

import annotations as A

from .test_browser import ARGS, CHROMIUM, open_page, post_on_screen, shot, wait_for_post, wait_text

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium")

KEYS = {"1": "negative", "2": "neutral", "3": "positive"}
# What the explanation panel shows to the eye: its head line, or what the guard writes over a stale one.
PANEL = """() => {
  const card = document.querySelector('#annotate-card .mmsa-card');
  const e = document.querySelector('#annotate-explanation .mmsa-explanation');
  if (!card || !e) return null;
  const stale = e.classList.contains('mmsa-stale');
  return {card: card.dataset.post || '', post: e.dataset.post || '', state: e.dataset.state || '', stale,
          text: stale ? `Explaining post #${e.dataset.for}…` : (e.querySelector('.mmsa-card-head')?.innerText || '')};
}"""
# Every state the panel goes through, recorded after each change of the page (the guard runs first).
RECORD = """() => {
  window.__panels = [];
  const panel = %s;
  new MutationObserver(() => { const p = panel(); if (p) window.__panels.push(p); })
    .observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}""" % PANEL


@pytest.fixture(scope="module")
def browser(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def posts(ctx, example):
    """Fourteen fresh posts (the example image, distinct texts), so every test's queue has enough."""
    with ctx.sessions.begin() as s:
        return [A.add_post(s, f"queue post {i}: {example[1]}", example[0], data_dir=ctx.settings.data_dir)
                for i in range(14)]


def shows_its_post(panel: dict) -> bool:
    """The panel names the post on the card: an explanation of it, or a line saying it is being explained."""
    if not panel["card"]:
        return panel["state"] == "none"
    return f"post #{panel['card']}" in panel["text"] and (panel["stale"] or panel["post"] == panel["card"])


def test_ten_posts_one_key_every_half_second_each_explanation_names_the_post_on_screen(browser, server, posts,
                                                                                         read_db):
    name = "fast-ana"
    page = open_page(browser, server, name, 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    post = wait_for_post(page)
    page.evaluate(RECORD)
    rng, labelled = random.Random(0), []
    for _ in range(10):
        started = time.monotonic()
        key = rng.choice(list(KEYS))
        page.keyboard.press(key)
        labelled.append((post, KEYS[key]))
        post = wait_for_post(page, other_than=post)
        panel = page.evaluate(PANEL)
        assert panel["card"] == str(post) and shows_its_post(panel), panel
        page.wait_for_timeout(max(0.0, 500 - 1000 * (time.monotonic() - started)))
    page.wait_for_function(f"document.querySelector('#annotate-explanation .mmsa-explanation[data-post=\"{post}\"]')"
                           "?.dataset.state === 'explained'")
    assert f"Heatmap and words for post #{post}" in page.inner_text("#annotate-explanation")
    seen = page.evaluate("window.__panels")
    assert seen and [p for p in seen if not shows_its_post(p)] == []  # never another post's explanation
    with read_db() as s:
        saved = [(r["post_id"], r["label"]) for r in reversed(A.history(s, annotator=name))]
    assert saved == labelled and len({p for p, _ in saved}) == 10  # each key press labelled the post on screen
    page.context.close()


def test_esc_then_1_labels_instead_of_typing_into_the_note(browser, server, posts, read_db):
    name = "esc-ana"
    page = open_page(browser, server, name, 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    post = wait_for_post(page)
    note = page.locator("#annotate-note textarea, #annotate-note input")
    note.click()
    page.keyboard.type("sarcasm?")
    page.keyboard.press("Escape")
    page.keyboard.press("1")
    wait_for_post(page, other_than=post)
    page.wait_for_function("document.querySelector('#annotate-note textarea, #annotate-note input').value === ''")
    with read_db() as s:
        row = A.history(s, annotator=name, limit=1)[0]
    assert (row["post_id"], row["label"], row["note"]) == (post, "negative", "sarcasm?")  # not "sarcasm?1"
    page.keyboard.press("n")  # n (and Enter) show the queue's next post: the same, as it is still open
    wait_text(page, "#annotate-status", "")
    page.context.close()


def test_a_reload_keeps_the_name_the_queue_and_the_tab(browser, server, posts):
    name = "reload-ana"
    page = open_page(browser, server, name, 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    wait_for_post(page)
    page.click("#annotate-strategy input")
    page.get_by_role("option", name="Queue: unseen").click()
    wait_text(page, "#annotate-progress", "queue unseen")
    page.reload()
    page.wait_for_selector("#analyze-run", state="attached")
    page.wait_for_function(f"document.querySelector('#annotator-name textarea, #annotator-name input')?.value "
                           f"=== '{name}'")
    assert page.input_value("#annotate-strategy input") == "Queue: unseen"
    assert page.get_by_role("tab", name="Annotate").get_attribute("aria-selected") == "true"
    wait_for_post(page)  # the tab reopened with the queue's next post
    assert name in wait_text(page, "#annotate-progress", "queue unseen")
    page.context.close()


def in_view(page, selector: str, width: int, height: int) -> bool:
    box = page.locator(selector).first.bounding_box()
    return bool(box) and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width \
        and box["y"] + box["height"] <= height


def test_at_1280x800_the_post_and_the_label_buttons_fit_and_390px_stacks(browser, server, posts):
    page = open_page(browser, server, "layout-ana", 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    wait_for_post(page)
    page.wait_for_function("document.querySelector('#annotate-card img')?.complete")
    for selector in ("#annotate-card img", "#annotate-card .mmsa-text", "#annotate-suggestion .mmsa-suggests",
                     "#annotate-negative", "#annotate-neutral", "#annotate-positive", "#annotate-skip"):
        assert in_view(page, selector, 1280, 800), selector
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scrolling
    card, buttons = (page.locator(s).bounding_box() for s in ("#annotate-card", "#annotate-buttons"))
    assert buttons["y"] >= card["y"] + card["height"] - 1  # the columns stack: the buttons come below the post
    page.context.close()


def test_a_10000_character_text_shows_its_start_and_opens_in_a_box(browser, server, ctx, example, read_db):
    name = "long-ana"
    long_text = " ".join(f"word{i}" for i in range(1300))[:10_000]
    with pytest.MonkeyPatch.context() as mp, ctx.sessions.begin() as s:
        mp.setattr(A.labels, "MAX_TEXT_CHARS", 20_000)  # older imports could hold such texts
        long_post = A.add_post(s, long_text, example[0], data_dir=ctx.settings.data_dir)
    with ctx.sessions.begin() as s:  # everything else is done for this annotator: the long post comes next
        for other in range(1, long_post):
            if A.is_open(s, name, other):
                A.skip(s, other, name)
    page = open_page(browser, server, name, 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    assert wait_for_post(page) == long_post
    assert page.evaluate("document.documentElement.scrollHeight") < 2000
    page.get_by_text("show all (10,000 characters)").click()
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollHeight") < 2000  # the rest scrolls inside its box
    assert "word1200" in page.inner_text("#annotate-card")  # the end of the text, in its box
    page.context.close()


@pytest.fixture
def disputed(ctx, example):
    """A post two annotators disagree on (the newest dispute, so the Review tab shows it first)."""
    with ctx.sessions.begin() as s:
        post = A.add_post(s, f"a post to review: {example[1]}", example[0], data_dir=ctx.settings.data_dir)
        A.save_correction(s, post, "rev-a", "positive", note="the trophy")
        A.save_correction(s, post, "rev-b", "negative", note="sarcasm")
    return post


def test_the_review_tab_records_a_final_label(browser, server, disputed, read_db):
    name = "rita"
    page = open_page(browser, server, name, 1280, 800)
    page.get_by_role("tab", name="Review").click()
    assert wait_for_post(page, "review") == disputed
    verdict = wait_text(page, "#review-verdict", "rev-b")
    assert "the trophy" in verdict and "sarcasm" in verdict and "Tie" in verdict
    assert "wait for a final label" in page.inner_text("#review-counts")
    shot(page, "review", full_page=False)
    note = page.locator("#review-note textarea, #review-note input")
    note.fill("the trophy wins")
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # positive [3]
    wait_text(page, "#review-status", f"Post #{disputed}: final label")
    with read_db() as s:
        adjudication = A.review_post(s, disputed)["adjudication"]
    assert (adjudication["label"], adjudication["reviewer"], adjudication["note"]) == ("positive", name,
                                                                                        "the trophy wins")
    page.context.close()


def test_annotate_screenshot(browser, server, posts):
    """The README's Annotate screenshot: the first screen at 1280x800, the post explained."""
    page = open_page(browser, server, "shot-ana", 1280, 800)
    page.get_by_role("tab", name="Annotate").click()
    post = wait_for_post(page)
    page.wait_for_function(f"document.querySelector('#annotate-explanation .mmsa-explanation[data-post=\"{post}\"]')"
                           "?.dataset.state === 'explained'")
    page.wait_for_timeout(500)
    assert post_on_screen(page) == post and f"for post #{post}" in page.inner_text("#annotate-explanation")
    shot(page, "annotate", full_page=False)
    page.context.close()
