import pytest
from PIL import Image

from mmsa_core.data import InputError, check_text, load_image, load_mvsa, read_csv_rows


def test_mvsa_loads_with_the_standard_split(mvsa_dir):
    posts = load_mvsa(mvsa_dir)
    counts = {s: sum(p.split == s for p in posts) for s in ("train", "val", "test", "unlabeled")}
    assert counts == {"train": 3611, "val": 450, "test": 450, "unlabeled": 358}
    assert all(p.label is None for p in posts if p.split == "test")  # held back


def test_corrupt_image_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="could not be read"):
        load_image(str(bad))
    with pytest.raises(InputError, match="could not be read"):
        load_image(b"%PDF-1.4 not an image")
    with pytest.raises(InputError, match="not found"):
        load_image(str(tmp_path / "missing.jpg"))


def test_alpha_and_palette_images_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    gif = tmp_path / "a.gif"
    Image.new("P", (8, 8)).save(gif)
    assert load_image(str(gif)).mode == "RGB"


def test_empty_text_gets_a_clear_error():
    for t in ("", "   \n", None):
        with pytest.raises(InputError, match="empty"):
            check_text(t)
    assert check_text("  hi ") == "hi"


def test_non_utf8_csv_gets_a_clear_error(tmp_path):
    p = tmp_path / "posts.csv"
    p.write_bytes("id,text\n1,caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_csv_rows(p)
    q = tmp_path / "cols.csv"
    q.write_text("ident,body\n1,x\n")
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['id', 'text'\]"):
        read_csv_rows(q)


def test_export_posts_carry_the_final_labels(tmp_path):
    """Training reads an annotations export's final labels: majorities and adjudications; unresolved ties stay out."""
    import annotations as A
    from mmsa_core.data import load_export_posts

    engine = A.create_engine_from_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    A.init_db(engine)
    sessions = A.create_sessionmaker(engine)
    with sessions.begin() as s:
        major, tie, settled = (A.add_post(s, text, data_dir=tmp_path) for text in ("major", "tie", "settled"))
        for post, labels in ((major, ("negative", "negative", "positive")), (tie, ("positive", "neutral")),
                             (settled, ("positive", "neutral"))):
            for name, label in zip(("ana", "bob", "cid"), labels):
                A.save_correction(s, post, name, label)
        A.adjudicate(s, settled, "rita", "neutral")
        path = A.export_snapshot(s, tmp_path)["path"]
    engine.dispose()
    assert {p.id: p.label for p in load_export_posts(path)} == {f"export:{major}": "negative",
                                                                f"export:{settled}": "neutral"}
