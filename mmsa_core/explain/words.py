"""The user's words and the model's word pieces: encoding with offsets and merging piece scores into words.

A *word* is what the user typed between whitespace ("#HappyDay", "@bob_92", "http://t.co/x", "great😀"),
so hashtags, mentions, URLs and emoji stay whole and the scores line up one-to-one with ``text.split()``.
The tokenizer's character offsets tie every piece to the word it came from; pieces of a word add up
(attributions are additive; attention weights are shares that add up too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class EncodedText:
    """A post's text as the model reads it, and where each piece came from."""

    text: str  # the checked (stripped) text
    words: tuple[str, ...]  # text.split()
    input_ids: torch.Tensor  # (1, L) padded to the encoder's max_len, exactly as ``tokenize`` does
    mask: torch.Tensor  # (1, L) bool, True for real tokens ([CLS] and [SEP] included)
    token_word: tuple[int, ...]  # (L,) index into ``words`` per token; -1 for added tokens ([CLS], [SEP], pad)
    seen_words: int  # words with at least one piece inside max_len; the rest were truncated away

    @property
    def truncated_words(self) -> int:
        """Words the model never read (beyond ``max_text_len``); their scores are 0."""
        return len(self.words) - self.seen_words


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the whitespace-separated words of ``text``."""
    spans, start = [], None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def encode_text(text_encoder, text: str) -> EncodedText:
    """Tokenize like ``text_encoder.tokenize`` and map every piece back to the word it came from."""
    tok = text_encoder.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ValueError(f"Word scores need a fast tokenizer (with offsets); {type(tok).__name__} is not one")
    enc = tok([text], padding="max_length", truncation=True, max_length=text_encoder.max_len,
              return_offsets_mapping=True, return_tensors="pt")
    spans = word_spans(text)
    char_word = np.full(len(text) + 1, -1, dtype=np.int64)
    for w, (s, e) in enumerate(spans):
        char_word[s:e] = w
    token_word = []
    for s, e in enc["offset_mapping"][0].tolist():  # added tokens ([CLS], [SEP], padding) span (0, 0)
        inside = char_word[s:e]
        inside = inside[inside >= 0]
        token_word.append(int(inside[0]) if len(inside) else -1)
    full = bool(enc["attention_mask"][0, -1])  # every position used: the text may have been cut short
    seen = max(token_word) + 1 if full else len(spans)
    return EncodedText(text, tuple(text[s:e] for s, e in spans), enc["input_ids"],
                       enc["attention_mask"].bool(), tuple(token_word), seen)


def to_words(encoded: EncodedText, token_scores: np.ndarray) -> list[tuple[str, float]]:
    """Sum (L,) piece scores into one score per word; words the model did not read score 0."""
    scores = np.zeros(len(encoded.words), dtype=np.float64)
    for t, w in enumerate(encoded.token_word):
        if w >= 0:
            scores[w] += float(token_scores[t])
    return [(word, float(s)) for word, s in zip(encoded.words, scores)]


def remove_words(encoded: EncodedText, drop: set[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, L) ids and mask of the post with the pieces of the words in ``drop`` deleted, re-padded.

    Deleting pieces (rather than masking them) is what "the post without these words" means to the model;
    special tokens stay.
    """
    ids = encoded.input_ids[0]
    keep = [t for t, w in enumerate(encoded.token_word)
            if encoded.mask[0, t] and (w < 0 or w not in drop)]
    new = torch.full_like(ids, pad_id)
    new[: len(keep)] = ids[keep]
    mask = torch.zeros_like(encoded.mask[0])
    mask[: len(keep)] = True
    return new[None], mask[None]


def scale_scores(scores: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Scores divided by the largest magnitude, so they lie in [-1, 1] (what ``gr.HighlightedText`` expects
    for numbers); signs and ratios are kept. All-zero scores stay zero."""
    top = max((abs(s) for _, s in scores), default=0.0)
    return [(w, s / top if top > 0 else 0.0) for w, s in scores]
