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
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(server)
        page.wait_for_selector("#analyze-run")
        page.fill("#annotator-name textarea, #annotator-name input", NAME)
        yield page
        browser.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("MMSA_SCREENSHOT_DIR"):
        Path(os.environ["MMSA_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(os.environ["MMSA_SCREENSHOT_DIR"]) / f"{name}.png")
    return path


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
    page.get_by_role("tab", name="Annotate").click()
    page.click("#annotate-next")
    wait_text(page, "#annotate-progress", "remaining")
    post = int(page.input_value("#annotate-post input"))
    note = page.get_by_label("Note (optional)").last
    note.fill("")
    note.press("1")  # typed into the note: must not label the post
    assert note.input_value() == "1"
    page.click("#annotate-progress")  # focus leaves the text box
    page.keyboard.press("3")
    wait_text(page, "#annotate-status", f"post #{post}")
    with read_db() as s:
        row = history(s, annotator=NAME, limit=1)[0]
    assert (row["post_id"], row["label"], row["note"]) == (post, "positive", "1")
    page.wait_for_function("[...document.querySelectorAll('textarea')].every((t) => !t.value.startsWith('1'))")
    assert note.input_value() == ""  # cleared for the next post
    page.keyboard.press("u")
    wait_text(page, "#annotate-status", "Undid")
    page.wait_for_function("document.querySelector('#annotate-text textarea')?.value.length > 0")
    page.wait_for_function("document.querySelector('#annotate-overlay img')?.naturalWidth > 0")  # its heatmap
    page.wait_for_timeout(500)
    shot(page, "annotate")


def test_dashboard_shows_counts(page):
    page.get_by_role("tab", name="Dashboard").click()
    wait_text(page, "body", "kappa")
    assert NAME in wait_text(page, "body", NAME)  # the per-annotator table
    page.wait_for_timeout(1000)  # the confusion-matrix images, when the model has val metrics
    shot(page, "dashboard")
