import random

from PIL import Image

from mmsa_core.augment import augment_text, image_augmentation


def test_text_augmentation_changes_text_but_keeps_tags_and_mentions():
    rng = random.Random(0)
    text = "what a great day with my friends #happy @anna http://t.co/x"
    outs = {augment_text(text, rng, p=0.3) for _ in range(30)}
    assert len(outs) > 5
    for o in outs:
        assert o.strip()
        for w in o.split():
            assert not w.startswith("#") or w == "#happy"


def test_one_word_text_is_left_alone():
    assert augment_text("wow", random.Random(0)) == "wow"


def test_image_augmentation_returns_an_image_of_the_size():
    out = image_augmentation(64)(Image.new("RGB", (120, 90), "red"))
    assert out.size == (64, 64)
