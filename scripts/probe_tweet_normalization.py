"""Probe (not adopted): the shipped recipe on tweet-normalised text, cross-validated on the usual folds.

    python scripts/probe_tweet_normalization.py <the arguments of python -m mmsa_core.compare>

Every post's text is rewritten the way tweet models are usually fed (TweetEval, BERTweet): links become
``http``, user handles ``@user``, and a leading retweet marker ``RT`` is dropped; then ``mmsa_core.compare``
runs as given. Folds are assigned on the original posts, so the rows score the same held-out posts as
every other row of docs/results.md (normalising merges some near-duplicate posts, which would otherwise
move them between folds). The rewritten posts hash differently, so they get feature caches of their own.
This is a probe, so it patches the loaders here instead of adding a model option; if it ever helps, the
rewrite belongs in the text encoder's config (it must travel with the weights and map back to the words the
explanation colours).
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core import compare, data, features, folds  # noqa: E402

URL = re.compile(r"https?://\S+|www\.\S+")
MENTION = re.compile(r"@\w+")
RETWEET = re.compile(r"^\s*RT\s+")


def normalise(text: str) -> str:
    return MENTION.sub("@user", RETWEET.sub("", URL.sub("http", text)))


def main(argv=None) -> None:
    load, assign = data.load_mvsa, folds.assign_folds
    originals: dict = {}

    def load_normalised(data_dir):
        posts = load(data_dir)
        originals.update({p.id: p for p in posts})
        return [dataclasses.replace(p, text=normalise(p.text)) for p in posts]

    def assign_on_originals(posts, k=5, seed=0):
        return assign([originals[p.id] for p in posts], k, seed)

    features.load_mvsa = folds.load_mvsa = load_normalised
    compare.assign_folds = assign_on_originals
    compare.main(argv, prog="python scripts/probe_tweet_normalization.py")


if __name__ == "__main__":
    main()
