"""Start-up decisions without a server: the access mode, what launch gets for it, the image folder repaired and
restored when the database opens, exports pruned, logins throttled."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image


def make_ctx(tmp_path, **kw):
    from webapp.context import AppContext
    from webapp.settings import AppSettings

    fields = dict(data_dir=tmp_path / "data", db_url=None, checkpoint=None, mvsa_dir=tmp_path, space_id=None)
    return AppContext(AppSettings(**{**fields, **kw}), seed=False)


def test_open_mode_listens_on_loopback_and_says_anyone_can_write(tmp_path, monkeypatch):
    import app

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    ctx = make_ctx(tmp_path)
    kwargs = app.launch_kwargs(ctx)
    assert ctx.access.mode == "open" and kwargs["server_name"] == "127.0.0.1" and "auth" not in kwargs
    assert "anyone who can reach" in ctx.access.banner(ctx.identify())
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # the documented override still works
    assert app.launch_kwargs(ctx)["server_name"] == "0.0.0.0"


def test_one_account_turns_on_the_login(tmp_path):
    import app
    from annotations.accounts import add_account

    ctx = make_ctx(tmp_path)
    with ctx.sessions.begin() as s:
        add_account(s, "ana", "annotator", "a long enough password")
    kwargs = app.launch_kwargs(ctx)
    assert ctx.access.mode == "accounts" and kwargs["auth"]("ana", "a long enough password")
    assert not kwargs["auth"]("ana", "wrong") and "server_name" not in kwargs


def test_a_space_without_sign_in_is_read_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.delenv("OAUTH_CLIENT_ID", raising=False)
    ctx = make_ctx(tmp_path, space_id="team/mmsa")
    who = ctx.identify(None, None, "ana")
    assert ctx.access.mode == "read-only" and who.role == "anonymous"
    from webapp.identity import require_role

    with pytest.raises(Exception, match="read-only"):
        require_role(who, "annotator", "save labels")


def test_logins_are_throttled_per_name(tmp_path):
    from annotations.accounts import add_account

    ctx = make_ctx(tmp_path, rate_rules=(("login", "3/minute"),))
    with ctx.sessions.begin() as s:
        add_account(s, "ana", "annotator", "a long enough password")
    assert [ctx.check_login("ana", "guess") for _ in range(3)] == [False] * 3
    assert not ctx.check_login("ana", "a long enough password")  # the right one too, until the minute is over
    assert ctx.limits.wait_s("login", "bea") == 0  # another name is not affected


def test_restart_repairs_and_restores_the_image_folder(tmp_path, monkeypatch):
    import hashlib

    from annotations import add_post, get_post

    monkeypatch.setenv("MMSA_IMAGES_IN_DB", "1")
    buf = io.BytesIO()
    Image.new("RGB", (5, 5), "red").save(buf, "PNG")
    first = make_ctx(tmp_path)
    with first.sessions.begin() as s:
        post = add_post(s, "kept", buf.getvalue(), data_dir=first.settings.data_dir)
    images = first.settings.data_dir / "images"
    for path in images.rglob("*.png"):
        path.unlink()  # wiped
    stray = images / "ab" / f"{hashlib.sha256(b'x').hexdigest()}.html"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("<script>alert(1)</script>")  # an old orphan
    restarted = make_ctx(tmp_path)
    with restarted.sessions() as s:  # the first use repairs, then restores
        assert Path(get_post(s, post, restarted.settings.data_dir)["image_path"]).read_bytes() == buf.getvalue()
    assert sorted(p.suffix for p in images.rglob("*") if p.is_file()) == [".png"]


def test_prune_exports_keeps_the_newest_and_the_protected(tmp_path):
    from webapp.dashboard import prune_exports

    for i in range(5):
        (tmp_path / f"2025010{i}T000000.000000Z-abcd").mkdir()
        (tmp_path / f"2025010{i}T000000.000000Z-abcd" / "manifest.json").write_text("{}")
        (tmp_path / f"2025010{i}T000000.000000Z-abcd.zip").write_bytes(b"zip")
    removed = prune_exports(tmp_path, keep=2, protect=frozenset({"20250100T000000.000000Z-abcd"}))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["20250100T000000.000000Z-abcd", "20250103T000000.000000Z-abcd", "20250103T000000.000000Z-abcd.zip",
                    "20250104T000000.000000Z-abcd", "20250104T000000.000000Z-abcd.zip"]
    assert len(removed) == 5
