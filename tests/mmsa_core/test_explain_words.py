"""Word scores line up one-to-one with the words the user typed, whatever the text holds."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmsa_core.explain import explain
from mmsa_core.explain.words import encode_text, remove_words, scale_scores, to_words, word_spans

from .conftest import tiny_model

TEXTS = [
    "so happy today #sun",
    "Café naïve 中文字 Ελληνικά ÅÄÖ",  # accents, CJK, Greek
    "love it 😀😀 great😍 🇸🇪 👩‍👩‍👧",  # emoji alone, glued to a word, flags, ZWJ sequences
    "see http://t.co/abc?x=1&y=2 and www.example.com/a_b",  # URLs stay whole
    "@bob_92 #HappyDay!!! @ # don't… stop",  # mentions, hashtags, lone symbols, apostrophes
    "  tabs\tand\nnewlines   between  ",
    "\u200b zero\u200dwidth \u00a0nbsp",  # zero-width characters, non-breaking space
]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_model("attention_concat").eval()


def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8))


@pytest.mark.parametrize("text", TEXTS)
def test_words_are_the_users_words(model, text):
    enc = encode_text(model.text_encoder, text)
    assert list(enc.words) == text.split()
    assert [text[s:e] for s, e in word_spans(text)] == text.split()
    scores = to_words(enc, np.arange(enc.input_ids.shape[1], dtype=np.float32))
    assert [w for w, _ in scores] == text.split()


def test_encoding_is_the_models_own(model):
    """The offsets encoding gives exactly the ids and mask the model predicts with."""
    for text in TEXTS:
        enc = encode_text(model.text_encoder, text)
        tok = model.text_encoder.tokenize([text])
        assert torch.equal(enc.input_ids, tok["input_ids"]) and torch.equal(enc.mask, tok["attention_mask"])


def test_pieces_add_up_into_their_word(model):
    enc = encode_text(model.text_encoder, "#HappyDay unbelievable")
    pieces = [t for t, w in enumerate(enc.token_word) if w == 0]
    assert len(pieces) >= 2  # "#", "happy", "##day"
    scores = np.zeros(enc.input_ids.shape[1], dtype=np.float32)
    scores[pieces] = 1.0
    assert to_words(enc, scores)[0] == ("#HappyDay", float(len(pieces)))
    assert enc.token_word[0] == -1  # [CLS] belongs to no word


def test_emoji_and_unknown_pieces_belong_to_their_word(model):
    enc = encode_text(model.text_encoder, "nice 😀")
    assert 1 in enc.token_word  # the emoji's [UNK] piece is the user's word, not a special token


@pytest.mark.parametrize("text", [t for t in TEXTS if t.strip()])
def test_explained_words_align(model, text):
    e = explain(model, image(), text, method=None, faithfulness=False)
    for scores in (e.word_scores, e.word_attention):
        assert [w for w, _ in scores] == text.split()
        assert all(np.isfinite(s) for _, s in scores)


def test_500_word_text_marks_what_the_model_never_read(model):
    words = [f"word{i}" if i % 7 else "😀" for i in range(500)]
    text = " ".join(words)
    e = explain(model, image(), text, method=None)
    assert [w for w, _ in e.word_scores] == words
    enc = encode_text(model.text_encoder, text)
    assert e.truncated_words == 500 - enc.seen_words > 400  # max_text_len is 24 tokens in the tiny model
    assert all(s == 0.0 for _, s in e.word_scores[enc.seen_words:])
    assert any(s != 0.0 for _, s in e.word_scores[: enc.seen_words])
    assert any("never read" in n for n in e.notes)


def test_removing_words_deletes_their_pieces(model):
    enc = encode_text(model.text_encoder, "good bad ugly")
    ids, mask = remove_words(enc, {1}, pad_id=0)
    expected = model.text_encoder.tokenize(["good ugly"])
    assert torch.equal(ids, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"])


def test_scaled_scores_fit_highlighted_text():
    assert scale_scores([("a", 2.0), ("b", -4.0), ("c", 0.0)]) == [("a", 0.5), ("b", -1.0), ("c", 0.0)]
    assert scale_scores([("a", 0.0)]) == [("a", 0.0)] and scale_scores([]) == []
