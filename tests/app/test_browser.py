"""End to end in headless Chromium: upload an example, analyze, see the label and the heatmap, save a
correction (read back from the database), annotate with the keyboard. Screenshots go to test-artifacts/.

Needs Debian's chromium (``apt-get install -y chromium``); skipped with the reason where it is absent.
MMSA_SCREENSHOT_DIR=docs/img additionally saves one screenshot per tab there (for the README).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from annotations import history

from .conftest import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
NAME = "browser-ana"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium "
                                "(apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield open_page(browser, server, NAME)
        browser.close()


def shot(page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("MMSA_SCREENSHOT_DIR"):
        Path(os.environ["MMSA_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(os.environ["MMSA_SCREENSHOT_DIR"]) / f"{name}.png")
    return path


def open_page(browser, url: str, name: str, width: int = 1280, height: int = 900):
    """A fresh page (its own local storage) with the app loaded and ``name`` typed in."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#analyze-run")
    page.wait_for_function("document.querySelector('#identity-banner')?.innerText.length > 0")  # loaded
    page.fill("#annotator-name textarea, #annotator-name input", name)
    return page


def post_on_screen(page, tab: str = "annotate") -> int | None:
    """The id of the post on the tab's card (None: no post)."""
    value = page.eval_on_selector(f"#{tab}-card .mmsa-card", "e => e.dataset.post")
    return int(value) if value else None


def wait_for_post(page, tab: str = "annotate", other_than: int | None = None) -> int:
    page.wait_for_function("([t, o]) => { const p = document.querySelector(`#${t}-card .mmsa-card`)?.dataset.post;"
                           " return !!p && p !== o; }", arg=[tab, "" if other_than is None else str(other_than)])
    return post_on_screen(page, tab)


def wait_text(page, selector: str, text: str) -> str:
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text])
    return page.inner_text(selector)


def test_analyze_then_correct(page, example, read_db):
    page.locator("#analyze-image input[type=file]").set_input_files(example[0])
    page.fill("#analyze-text textarea", example[1])
    page.wait_for_selector("#analyze-image img")
    page.click("#analyze-run")
    label = wait_text(page, "#analyze-label", "%")
    assert any(lab in label for lab in ("negative", "neutral", "positive"))
    page.wait_for_function("document.querySelector('#analyze-overlay img')?.naturalWidth > 0")  # the heatmap
    wait_text(page, "#analyze-words", example[1].split()[0])
    wait_text(page, "#analyze-timing", "faithfulness pass")  # the second pass filled in its scores
    assert "ROAD" in page.inner_text("body")
    page.fill("textarea[placeholder='why, e.g. sarcasm']", "from the browser")
    page.click("#analyze-negative")
    saved = wait_text(page, "#analyze-saved", "Saved correction")
    shot(page, "analyze")
    with read_db() as s:
        row = history(s, annotator=NAME, limit=1)[0]
    assert row["label"] == "negative" and row["note"] == "from the browser" and f"#{row['annotation_id']}" in saved


def test_annotate_with_hotkeys(page, read_db):
    page.get_by_role("tab", name="Annotate").click()  # opening the tab shows the queue's next post
    post = wait_for_post(page)
    wait_text(page, "#annotate-progress", "remaining")
    note = page.locator("#annotate-note textarea, #annotate-note input")
    note.fill("")
    note.press("1")  # typed into the note: must not label the post
    assert note.input_value() == "1"
    page.click("#annotate-progress")  # focus leaves the text box
    page.keyboard.press("3")
    wait_text(page, "#annotate-status", f"post #{post}")
    with read_db() as s:
        row = history(s, annotator=NAME, limit=1)[0]
    assert (row["post_id"], row["label"], row["note"]) == (post, "positive", "1")
    page.wait_for_function("document.querySelector('#annotate-note textarea, #annotate-note input').value === ''")
    page.keyboard.press("u")
    wait_text(page, "#annotate-status", "Undid")
    assert wait_for_post(page, other_than=-1) == post  # the undone post is back, with its explanation
    page.wait_for_function(f"document.querySelector('#annotate-explanation .mmsa-explanation[data-post=\"{post}\"]')"
                           "?.dataset.state === 'explained'")
    assert f"for post #{post}" in page.inner_text("#annotate-explanation")


def test_dashboard_shows_counts_and_the_export_button_downloads(page, ctx):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("tab", name="Dashboard").click()
    wait_text(page, "body", "kappa")
    assert NAME in wait_text(page, "#dashboard-annotators", NAME)  # the per-annotator table
    for table in ("#dashboard-annotators", "#dashboard-versions"):  # not cut at 1440 px: no sideways scrolling
        assert page.eval_on_selector(f"{table} table", "t => t.parentElement.scrollWidth <= "
                                                       "t.parentElement.clientWidth + 1"), table
    assert "remaining" in page.inner_text("#dashboard-annotators")
    page.wait_for_timeout(1000)  # the confusion-matrix images, when the model has val metrics
    shot(page, "dashboard")
    with page.expect_download() as download:  # the export button starts the download itself
        page.click("#dashboard-export")
    assert download.value.suggested_filename.endswith(".zip")
    summary = wait_text(page, "#dashboard-export-summary", "Exported")
    assert "ties kept" in summary and str(ctx.settings.data_dir) not in page.inner_text("body")
