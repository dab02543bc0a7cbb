"""A simulated Hugging Face Space with sign-in (SPACE_ID, SYSTEM=spaces, OAUTH_* set; the provider never
answers): anonymous visitors analyze but write nothing; a signed-in user acts under their own name whatever
the request says; MMSA_ADMINS names the admins; an API token identifies its account.

Signed-in users are simulated with the session cookie Gradio's sign-in would set (Starlette's signed
``session`` cookie holding ``oauth_info``), so the app's own code path from cookie to identity is tested.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from annotations import history

from .helpers import db_snapshot

OAUTH = {"OAUTH_CLIENT_ID": "test-client", "OAUTH_CLIENT_SECRET": "test-secret", "OAUTH_SCOPES": "openid profile",
         "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}  # nothing listens there: the provider is never asked
# Gradio on a Space starts a hot-reload watcher that needs the `spaces` package; its thread dies, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture(scope="module")
def space(tmp_path_factory, checkpoint):
    import gradio.oauth

    import app
    from webapp.context import AppContext
    from webapp.settings import AppSettings

    with pytest.MonkeyPatch.context() as mp:
        for var, value in {"SPACE_ID": "team/mmsa", "SYSTEM": "spaces", **OAUTH}.items():
            mp.setenv(var, value)
        for var, value in OAUTH.items():
            mp.setattr(gradio.oauth, var, value)  # Gradio read them when it was imported
        settings = AppSettings(data_dir=tmp_path_factory.mktemp("space") / "data", db_url=None,
                               checkpoint=str(checkpoint), mvsa_dir=Path("/nonexistent/mvsa"), space_id="team/mmsa",
                               admins="boss")
        ctx = AppContext(settings)
        demo = app.build_demo(ctx)
        url = app.serve(demo, ctx, quiet=True, server_name="127.0.0.1")
        yield ctx, url
        demo.close()


def signed_in_cookie(username: str) -> str:
    """The ``session`` cookie Gradio's sign-in sets after Hugging Face confirms ``username``."""
    from itsdangerous import TimestampSigner

    info = {"oauth_info": {"userinfo": {"name": username.title(), "preferred_username": username,
                                        "profile": f"https://huggingface.co/{username}", "picture": ""},
                           "access_token": "hf_test", "scope": "openid profile", "expires_at": time.time() + 3600}}
    secret = hashlib.sha256((OAUTH["OAUTH_CLIENT_SECRET"] + "-v4").encode()).hexdigest()
    signed = TimestampSigner(secret).sign(base64.b64encode(json.dumps(info).encode()))
    return f"session={signed.decode()}"


def client(url: str, user: str | None = None, **headers) -> Client:
    if user:
        headers["Cookie"] = signed_in_cookie(user)
    return Client(url, verbose=False, headers=headers or None)


ANONYMOUS_WRITES = [
    ("/correct", lambda ex: (handle_file(ex[0]), ex[1], "negative", "sock puppet", "mallory", ""),
     "Sign in to save labels"),
    ("/next_post", lambda ex: ("mallory", "unseen", ""), "Sign in to annotate"),
    ("/label_post", lambda ex: ("mallory", 1, "neutral", "", "unseen", ""), "Sign in to annotate"),
    ("/skip_post", lambda ex: ("mallory", 1, "unseen", ""), "Sign in to annotate"),
    ("/undo", lambda ex: ("bob", "unseen", ""), "Sign in to annotate"),
    ("/dashboard", lambda ex: ("",), "Sign in to see the dashboard"),
    ("/review", lambda ex: (False, "mallory"), "Sign in to review disputed posts"),
    ("/adjudicate", lambda ex: (1, "neutral", "", False, "mallory"), "Sign in to adjudicate"),
    ("/export", lambda ex: (), "Sign in to export"),
    ("/retrain", lambda ex: (True,), "Sign in to retrain"),
    ("/cancel_retrain", lambda ex: (), "Sign in to cancel a retrain"),
    ("/serve_model", lambda ex: ("",), "Sign in to choose the model"),
    ("/explain", lambda ex: (handle_file(ex[0]), ex[1], "", "ScoreCAM", 0.5, "attribution (integrated gradients)",
                             False), "Sign in to use ScoreCAM"),
]


def test_anonymous_visitors_analyze_but_write_nothing(space, example):
    ctx, url = space
    anon = client(url)
    label, _ = anon.predict(handle_file(example[0]), example[1], "", api_name="/predict")
    assert label["label"] in ("negative", "neutral", "positive")
    before = db_snapshot(ctx)
    for api_name, args, message in ANONYMOUS_WRITES:
        with pytest.raises(Exception, match=message):
            anon.predict(*args(example), api_name=api_name)
    assert db_snapshot(ctx) == before  # no row, no image file, no export


def test_a_signed_in_user_labels_under_their_own_name(space, example):
    ctx, url = space
    ana = client(url, "hf-ana")
    _, receipt = ana.predict(handle_file(example[0]), example[1], "negative", "", "mallory", "", api_name="/correct")
    assert receipt["annotator"] == "hf-ana"
    shown = ana.predict("mallory", "unseen", "", api_name="/next_post")
    after = ana.predict("mallory", shown[0], "positive", "", "unseen", "", api_name="/label_post")
    assert after[8]["annotator"] == "hf-ana"
    with ctx.sessions() as s:
        assert {r["annotator"] for r in history(s, limit=5)} == {"hf-ana"}
        assert not history(s, annotator="mallory")
    with pytest.raises(Exception, match="Only admins can export"):
        ana.predict(api_name="/export")


def test_undo_never_touches_someone_elses_labels(space):
    ctx, url = space
    ana, bob = client(url, "hf-ana2"), client(url, "hf-bob")
    shown = ana.predict("", "unseen", "", api_name="/next_post")
    ana.predict("", shown[0], "neutral", "", "unseen", "", api_name="/label_post")
    out = bob.predict("hf-ana2", "unseen", "", api_name="/undo")  # names ana: still bob's own (empty) history
    assert out[7] == "Nothing to undo."
    with ctx.sessions() as s:
        assert [r["kind"] for r in history(s, annotator="hf-ana2")] == ["label"]


def test_admins_are_named_by_mmsa_admins(space):
    ctx, url = space
    zip_path, md = client(url, "boss").predict(api_name="/export")
    assert zip_path.endswith(".zip") and "Exported" in md
    assert list((ctx.settings.data_dir / "exports").glob("*.zip"))


def test_a_token_identifies_its_account_on_a_space(space, example):
    from annotations.accounts import add_account, create_token

    ctx, url = space
    with ctx.sessions.begin() as s:
        add_account(s, "bot", "annotator")
        _, token = create_token(s, "bot", "ci")
    bot = client(url, **{"X-MMSA-Token": token})
    _, receipt = bot.predict(handle_file(example[0]), example[1], "positive", "", "mallory", "", api_name="/correct")
    assert receipt["annotator"] == "bot"
    with pytest.raises(Exception, match="no valid API token"):
        client(url, **{"X-MMSA-Token": token + "x"}).predict(handle_file(example[0]), example[1], "",
                                                             api_name="/predict")
