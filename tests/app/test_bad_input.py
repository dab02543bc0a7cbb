"""Bad input gets a clear error (or works); the app keeps serving afterwards."""
from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from webapp.inputs import MAX_UPLOAD_MB

ATTRIBUTION = "attribution (integrated gradients)"


def predict(client, image, text):
    return client.predict(handle_file(str(image)), text, "", api_name="/predict")


def explain(client, image, text):
    return client.predict(handle_file(str(image)), text, "", "GradCAM", 0.5, ATTRIBUTION, False,
                          api_name="/explain")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "notes.jpg").write_text("this is not an image, only a text file named .jpg")
    (d / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    Image.new("RGB", (4200, 4000)).save(d / "huge.bmp")  # 50 MB on disk
    Image.new("L", (8000, 6000)).save(d / "bomb.png")  # small file, 48 megapixels
    frames = [Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    rgba = rng.integers(0, 255, (90, 120, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    Image.fromarray(rgba, "RGBA").save(d / "alpha.png")
    return d


@pytest.mark.parametrize("name, message", [
    ("notes.jpg", "could not be read"),
    ("truncated.jpg", "could not be read"),
    ("huge.bmp", f"the limit is {MAX_UPLOAD_MB} MB"),
    ("bomb.png", "too large"),
])
def test_unusable_images_get_a_clear_error(client, images, name, message):
    with pytest.raises(Exception, match=message):
        predict(client, images / name, "a post")


@pytest.mark.parametrize("name", ["anim.gif", "alpha.png"])
def test_gif_and_transparent_png_work(client, images, name):
    label, _ = predict(client, images / name, "a post")
    assert label["label"] in ("negative", "neutral", "positive")
    overlay = explain(client, images / name, "a post")[0]
    assert Image.open(overlay).size == Image.open(images / name).size


@pytest.mark.parametrize("text, message", [("", "text is empty"), ("   \n ", "text is empty"),
                                           ("x" * 5_001, "limit is 5,000")])
def test_empty_or_huge_text_gets_a_clear_error(client, example, text, message):
    with pytest.raises(Exception, match=message):
        predict(client, example[0], text)


@pytest.mark.parametrize("text", [
    " ".join(["word"] * 999),  # 4,994 characters: the model reads the first tokens, the rest is noted
    "what a day 😂🔥🎉 #blessed",
    "يوم جميل جدا في الحديقة",  # Arabic (right to left)
    "שבת שלום לכולם",  # Hebrew
    "今日はとても楽しかった",
])
def test_long_emoji_and_rtl_texts_work(client, example, text):
    label, _ = predict(client, example[0], text)
    assert label["label"] in ("negative", "neutral", "positive")
    words = explain(client, example[0], text)[1]
    assert "".join(w["token"] for w in words).split() == text.split()


def test_missing_image_unknown_model_label_and_name(client, example):
    with pytest.raises(Exception, match="No image"):
        client.predict(None, "a post", "", api_name="/predict")
    with pytest.raises(Exception, match="Unknown model"):
        client.predict(handle_file(example[0]), "a post", "nope.pt", api_name="/predict")
    with pytest.raises(Exception, match="NoSuchCAM is not in the list of choices"):
        client.predict(handle_file(example[0]), "a post", "", "NoSuchCAM", 0.5, ATTRIBUTION, False,
                       api_name="/explain")
    with pytest.raises(Exception, match="Unknown label 'happy'"):
        client.predict(handle_file(example[0]), "a post", "happy", "", "ana", "", api_name="/correct")
    with pytest.raises(Exception, match="Type your name"):
        client.predict(handle_file(example[0]), "a post", "positive", "", "  ", "", api_name="/correct")
    with pytest.raises(Exception, match="Post id must be a number|No post with id"):
        client.predict("ana", 10**9, "positive", "", "unseen", "", api_name="/label_post")


def test_app_still_serves_after_bad_input(client, example):
    label, _ = predict(client, example[0], example[1])
    assert label["label"] in ("negative", "neutral", "positive")
