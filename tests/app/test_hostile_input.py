"""What an attacker sends (open mode, the session's app): a PNG named x.html, images as data: URLs, NUL
characters, lone surrogates, huge names and notes, post ids that are not whole numbers. Each gets a clear
message and writes nothing, not even an image file; a stored image is served as an image."""
from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
from gradio_client import handle_file
from PIL import Image

from annotations import get_post

from .helpers import db_snapshot


def png_bytes(size=(40, 30), color=(10, 200, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def disguised(tmp_path_factory):
    """A real PNG under the name x.html: its script would run if it were ever served as a page."""
    path = tmp_path_factory.mktemp("hostile") / "x.html"
    path.write_bytes(png_bytes() + b"<script>document.title='pwned'</script>")
    return path


def call_raw(url: str, api_name: str, data: list) -> tuple[str, object]:
    """An API call over plain HTTP (as any script could send it): (the final event's name, its data). The body
    is ASCII JSON, so lone surrogates travel as \\ud800 escapes, as an attacker sends them."""
    body = json.dumps({"data": data}).encode()
    event_id = httpx.post(f"{url}gradio_api/call/{api_name}", content=body, timeout=60,
                          headers={"content-type": "application/json"}).json()["event_id"]
    last = ("", None)
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{event_id}", timeout=120) as response:
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                last = (event, json.loads(line.split(":", 1)[1]))
    return last


def data_url(data: bytes, mime: str = "image/png") -> dict:
    return {"path": None, "url": f"data:{mime};base64,{base64.b64encode(data).decode()}",
            "meta": {"_type": "gradio.FileData"}}


def test_a_png_named_html_is_stored_and_served_as_an_image(client, server, ctx, disguised, read_db):
    _, receipt = client.predict(handle_file(str(disguised)), "a disguised post", "positive", "", "ana", "",
                                api_name="/correct")
    with read_db() as s:
        post = get_post(s, receipt["post_id"], ctx.settings.data_dir)
    assert post["image"].endswith(".png")
    assert not [p for p in (ctx.settings.data_dir / "images").rglob("*") if p.is_file() and p.suffix != ".png"
                and p.suffix not in (".jpg", ".gif", ".webp")]
    response = httpx.get(f"{server}gradio_api/file={post['image_path']}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == disguised.read_bytes()


def test_an_image_sent_as_a_data_url_is_checked_like_an_upload(server, ctx, example):
    event, out = call_raw(server, "predict", [data_url(png_bytes()), "a post as a data URL", ""])
    assert event == "complete" and out[0]["label"] in ("negative", "neutral", "positive")
    before = db_snapshot(ctx)
    huge = b"\x89PNG\r\n\x1a\n" + b"\0" * 21_000_000
    event, out = call_raw(server, "correct", [data_url(huge), "x", "negative", "", "ana", ""])
    assert event == "error" and "the limit is 20 MB" in str(out)
    event, out = call_raw(server, "correct", [data_url(b"<svg onload=alert(1)>", "image/svg+xml"), "x", "negative",
                                              "", "ana", ""])
    assert event == "error" and "not a JPEG, PNG, GIF or WebP" in str(out)
    assert db_snapshot(ctx) == before


CORRECT = "/correct"
BAD_CORRECTIONS = [  # (text, label, note, annotator) -> message
    (("a post", "negative", "", "\x00"), "NUL character"),
    (("a post", "negative", "", "\x00ana"), "NUL character"),
    (("a post", "negative", "", "ana\ud800"), "unpaired surrogate"),
    (("a post", "negative", "", "<img src=x onerror=alert(1)>"), "may only hold letters"),
    (("a post", "negative", "", "[x](javascript:alert(1))"), "may only hold letters"),
    (("a post", "negative", "", "n" * 100_000), "the limit is 64"),
    (("a post", "negative", "n" * 100_000, "ana"), "the limit is 2,000"),
    (("a post", "negative", "a \x00 note", "ana"), "NUL character"),
    (("a post", "negative", "\udc00", "ana"), "unpaired surrogate"),
    (("\x00", "negative", "", "ana"), "NUL character"),
    (("\x00\x00 text", "negative", "", "ana"), "NUL character"),
    (("broken \ud83d text", "negative", "", "ana"), "unpaired surrogate"),
    (("x" * 5_001, "negative", "", "ana"), "the limit is 5,000"),
    (("a post", "\x00", "", "ana"), "Unknown label"),
]


@pytest.mark.parametrize("args, message", BAD_CORRECTIONS)
def test_bad_corrections_get_a_clear_message_and_write_nothing(client, server, ctx, disguised, args, message):
    client.predict("ana", "unseen", "", api_name="/next_post")  # the database exists before the snapshot
    before = db_snapshot(ctx)
    text, label, note, name = args
    event, out = call_raw(server, "correct", [data_url(disguised.read_bytes()), text, label, note, name, ""])
    assert event == "error" and message in str(out)
    assert db_snapshot(ctx) == before  # no row, and no orphan image file either


def test_the_reported_orphan_file_case_leaves_nothing(client, ctx, tmp_path):
    """The issue's case: a new image uploaded as a file named x.html with the annotator "\\x00"."""
    fresh = tmp_path / "x.html"
    fresh.write_bytes(png_bytes(color=(1, 2, 3)))  # an image the data folder does not hold yet
    client.predict("ana", "unseen", "", api_name="/next_post")
    before = db_snapshot(ctx)
    with pytest.raises(Exception, match="NUL character"):
        client.predict(handle_file(str(fresh)), "a post", "negative", "", "\x00", "", api_name=CORRECT)
    assert db_snapshot(ctx) == before


@pytest.mark.parametrize("post_id", [1.5, "abc", 2**63, True, -1, 0])
def test_post_ids_must_be_whole_numbers_in_range(server, ctx, post_id):
    before = db_snapshot(ctx)
    event, out = call_raw(server, "label_post", ["ana", post_id, "positive", "", "unseen", ""])
    assert event == "error" and "Post id must be" in str(out)
    event, out = call_raw(server, "skip_post", ["ana", post_id, "unseen", ""])
    assert event == "error" and "Post id must be" in str(out)
    assert db_snapshot(ctx) == before


@pytest.mark.parametrize("strategy", ["\x00", "unseen\x00", "\ud800", "x" * 10_000])
def test_bad_strategy_names_get_a_clear_message(server, ctx, strategy):
    before = db_snapshot(ctx)
    event, out = call_raw(server, "next_post", ["ana", strategy, ""])
    assert event == "error" and "not in the list of choices" in str(out)
    assert db_snapshot(ctx) == before
