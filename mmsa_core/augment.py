"""Training-time augmentation that needs no network: EDA-style text edits and torchvision image jitter."""
from __future__ import annotations

import random

from torchvision import transforms as T

# A small offline synonym table for words that carry sentiment in tweets (EDA's synonym replacement
# uses WordNet, which would need a download).
SYNONYMS: dict[str, list[str]] = {
    "good": ["great", "nice", "fine"], "great": ["good", "awesome", "excellent"], "happy": ["glad", "joyful"],
    "love": ["adore", "like"], "like": ["enjoy", "love"], "beautiful": ["lovely", "gorgeous", "pretty"],
    "nice": ["good", "lovely"], "awesome": ["amazing", "great"], "amazing": ["awesome", "incredible"],
    "bad": ["awful", "poor", "terrible"], "sad": ["unhappy", "down"], "hate": ["loathe", "detest"],
    "terrible": ["awful", "horrible"], "awful": ["terrible", "dreadful"], "angry": ["mad", "furious"],
    "best": ["finest", "greatest"], "worst": ["poorest"], "funny": ["hilarious", "amusing"],
    "cute": ["adorable", "sweet"], "day": ["day"], "today": ["today"], "big": ["large", "huge"],
    "small": ["little", "tiny"], "fun": ["enjoyable"], "cool": ["neat"], "pic": ["photo", "picture"],
    "photo": ["picture", "pic"], "picture": ["photo", "pic"], "friends": ["pals", "mates"],
}


def _protected(word: str) -> bool:
    return word.startswith(("#", "@", "http"))  # hashtags, mentions and links stay intact


def augment_text(text: str, rng: random.Random, p: float = 0.1) -> str:
    """One of synonym replacement, random insertion, random swap or random deletion (EDA, Wei & Zou 2019)."""
    words = text.split()
    if len(words) < 2:
        return text
    n = max(1, int(p * len(words)))
    op = rng.choice(["synonym", "insert", "swap", "delete"])
    if op == "synonym":
        idx = [i for i, w in enumerate(words) if w.lower() in SYNONYMS]
        for i in rng.sample(idx, min(n, len(idx))):
            words[i] = rng.choice(SYNONYMS[words[i].lower()])
    elif op == "insert":
        for _ in range(n):
            words.insert(rng.randrange(len(words) + 1), rng.choice(words))
    elif op == "swap":
        for _ in range(n):
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
    else:
        kept = [w for w in words if _protected(w) or rng.random() > p]
        words = kept or [rng.choice(words)]
    return " ".join(words)


def image_augmentation(size: int) -> T.Compose:
    """Colour, rotation and crop jitter applied to a PIL image before the encoder's own preprocessing."""
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.7, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomRotation(10),
        T.ColorJitter(0.3, 0.3, 0.3, 0.05),
    ])
