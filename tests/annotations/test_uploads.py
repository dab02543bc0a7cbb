"""Stored images: the extension comes from the bytes, only decodable JPEG/PNG/GIF/WebP within the limits,
no file left by a failed save, bytes kept in the database and restored, old bad files repaired; typed text
within limits."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select, text

import annotations as A
from annotations import AnnotationError
from annotations.blobs import repair_images, restore_images
from annotations.images import IMAGE_EXTS, MAX_IMAGE_BYTES
from annotations.models import ImageBlob, Post


def png(color=(200, 30, 30), size=(8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def files(data_dir: Path) -> list[Path]:
    root = data_dir / "images"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_extension_comes_from_the_bytes_not_the_name(sessions, data_dir, tmp_path):
    disguised = tmp_path / "x.html"
    disguised.write_bytes(png())
    with sessions.begin() as s:
        post = A.add_post(s, "a post", disguised, data_dir=data_dir)
        got = A.get_post(s, post, data_dir)
    assert got["image"].endswith(".png") and Path(got["image_path"]).read_bytes() == png()
    assert [p.suffix for p in files(data_dir)] == [".png"]


@pytest.mark.parametrize("make, message", [
    (lambda: b"<html><script>alert(1)</script></html>", "not a JPEG, PNG, GIF or WebP"),
    (lambda: b"\x89PNG\r\n\x1a\n" + b"<script>alert(1)</script>", "could not be read"),  # PNG magic, not a PNG
    (lambda: _bmp(), "not a JPEG, PNG, GIF or WebP"),
    (lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not a JPEG"),
    (lambda: png(size=(8000, 6000)), r"too large \(8000x6000 pixels\)"),
    (lambda: png() + b"\0" * (MAX_IMAGE_BYTES + 1), "the limit is 20 MB"),
])
def test_unacceptable_images_are_refused_and_write_nothing(sessions, data_dir, row_counts, tmp_path, make, message):
    path = tmp_path / "upload.png"
    path.write_bytes(make())
    before = row_counts()
    for image in (path, path.read_bytes()):
        with pytest.raises(AnnotationError, match=message), sessions.begin() as s:
            A.add_post(s, "x", image, data_dir=data_dir)
    assert row_counts() == before and files(data_dir) == []


def _bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "BMP")
    return out.getvalue()


def test_a_failed_save_leaves_no_file_and_no_row(sessions, data_dir, row_counts):
    before = row_counts()
    with pytest.raises(AnnotationError, match="Annotator name"), sessions.begin() as s:
        post = A.add_post(s, "x", png(), data_dir=data_dir)
        assert len(files(data_dir)) == 1  # written inside the transaction ...
        A.save_correction(s, post, "\x00", "positive")
    assert files(data_dir) == [] and row_counts() == before  # ... and removed with its rollback
    with pytest.raises(RuntimeError), sessions.begin() as s:  # any error, a database one too
        A.add_post(s, "x", png(), data_dir=data_dir)
        raise RuntimeError("the database went away")
    assert files(data_dir) == []


def test_a_rollback_keeps_files_it_did_not_create(sessions, data_dir):
    with sessions.begin() as s:
        kept = A.add_post(s, "first", png(), data_dir=data_dir)
    with pytest.raises(RuntimeError), sessions.begin() as s:
        A.add_post(s, "second, same image", png(), data_dir=data_dir)
        A.save_correction(s, kept, "new-name", "neutral")  # a savepoint (new annotator) in between
        raise RuntimeError
    with sessions() as s:
        assert Path(A.get_post(s, kept, data_dir)["image_path"]).is_file()


@pytest.mark.parametrize("call, message", [
    (lambda s, p: A.add_post(s, "nul \x00 inside"), "NUL character"),
    (lambda s, p: A.add_post(s, "broken \ud800 utf-16"), "unpaired surrogate"),
    (lambda s, p: A.add_post(s, "x" * 5_001), "the limit is 5,000"),
    (lambda s, p: A.add_post(s, "x", source="s" * 201), "at most 200 characters"),
    (lambda s, p: A.save_correction(s, p, "ana", "positive", note="n" * 2_001), "the limit is 2,000"),
    (lambda s, p: A.save_correction(s, p, "ana", "positive", note="a \x00 note"), "NUL character"),
    (lambda s, p: A.skip(s, p, "ana", note="\udfff"), "unpaired surrogate"),
    (lambda s, p: A.save_correction(s, p, "a" * 65, "positive"), "the limit is 64"),
    (lambda s, p: A.save_correction(s, p, "<img src=x>", "positive"), "may only hold letters"),
    (lambda s, p: A.save_correction(s, p, "[x](javascript:alert(1))", "positive"), "may only hold letters"),
    (lambda s, p: A.save_correction(s, p, "\x00ana", "positive"), "NUL character"),
    (lambda s, p: A.save_correction(s, p, "ana\ud800", "positive"), "unpaired surrogate"),
    (lambda s, p: A.save_correction(s, p, "tab\there", "positive"), "may only hold letters"),
    (lambda s, p: A.save_correction(s, 2**63, "ana", "positive"), "No post with id"),
    (lambda s, p: A.save_correction(s, 0, "ana", "positive"), "No post with id"),
    (lambda s, p: A.save_correction(s, True, "ana", "positive"), "Post id must be an integer"),
    (lambda s, p: A.save_correction(s, 1.5, "ana", "positive"), "Post id must be an integer"),
])
def test_typed_text_limits(sessions, data_dir, row_counts, call, message):
    with sessions.begin() as s:
        post = A.add_post(s, "a post", data_dir=data_dir)
    before = row_counts()
    with pytest.raises(AnnotationError, match=message), sessions.begin() as s:
        call(s, post)
    assert row_counts() == before


def test_names_of_any_script_are_fine(sessions, data_dir):
    with sessions.begin() as s:
        post = A.add_post(s, "a post", data_dir=data_dir)
        for name in ("José Álvarez", "ана", "李雷", "ana.b_c-d@lab", " padded "):
            A.save_correction(s, post, name, "neutral")
    with sessions() as s:
        assert set(A.current_labels(s, post)) == {"José Álvarez", "ана", "李雷", "ana.b_c-d@lab", "padded"}


def test_images_kept_in_the_database_come_back_after_a_wipe(sessions, data_dir, monkeypatch):
    monkeypatch.setenv("MMSA_IMAGES_IN_DB", "1")  # SQLite keeps no bytes unless asked
    with sessions.begin() as s:
        post = A.add_post(s, "kept", png(), data_dir=data_dir)
        other = A.add_post(s, "kept too", png((1, 2, 3)), data_dir=data_dir)
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 2
    for path in files(data_dir):
        path.unlink()  # a Space restart wipes the disk
    with sessions.begin() as s:
        got = A.get_post(s, post, data_dir)  # restored on read
        assert Path(got["image_path"]).read_bytes() == png()
        assert restore_images(s, data_dir) == 1  # the other one, at start-up
    with sessions() as s:
        assert Path(A.get_post(s, other, data_dir)["image_path"]).read_bytes() == png((1, 2, 3))


def test_sqlite_keeps_no_bytes_by_default(sessions, data_dir, monkeypatch):
    monkeypatch.delenv("MMSA_IMAGES_IN_DB", raising=False)
    with sessions.begin() as s:
        A.add_post(s, "file only", png(), data_dir=data_dir)
        assert s.scalar(select(func.count()).select_from(ImageBlob)) == 0


def test_repair_renames_disguised_images_and_removes_the_rest(sessions, engine, data_dir):
    import hashlib

    good, evil = png(), b"<script>alert(document.cookie)</script>"
    sha_good, sha_evil = hashlib.sha256(good).hexdigest(), hashlib.sha256(evil).hexdigest()
    for sha, data in ((sha_good, good), (sha_evil, evil)):  # what an older version wrote
        path = data_dir / "images" / sha[:2] / f"{sha}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    orphan = data_dir / "images" / "ab" / "orphan.svg"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_text("<svg/>")
    with engine.begin() as conn:
        for i, sha in enumerate((sha_good, sha_evil), 1):
            content = A.content_sha256(sha, f"old {i}")
            conn.execute(text("INSERT INTO posts (id, text, source, image_sha256, image_ext, content_sha256, "
                              f"created_at) VALUES ({i}, 'old {i}', 'upload', '{sha}', 'html', '{content}', "
                              "'2024-01-01 00:00:00')"))
    with sessions.begin() as s:
        assert repair_images(s, data_dir) == {"renamed": 1, "removed": 2}
    assert [p.suffix for p in files(data_dir)] == [".png"]
    with sessions() as s:
        assert A.get_post(s, 1, data_dir)["image"].endswith(f"{sha_good}.png")
        assert A.get_post(s, 2, data_dir)["image"] is None and A.get_post(s, 2, data_dir)["text"] == "old 2"
        assert {p.image_ext for p in s.scalars(select(Post))} <= set(IMAGE_EXTS) | {None}
