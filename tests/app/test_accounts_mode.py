"""Accounts mode (at least one account): the app asks for a login, the logged-in account acts whatever name a
request carries, admins alone export / retrain / choose the model, a token header passes the login as its
account, a disabled account stops at once, and the model endpoints are rate-limited."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from annotations import history

from .helpers import db_snapshot, fake_worker_launcher, wait_for

PASSWORD = "a long enough password"
ATTRIBUTION = "attribution (integrated gradients)"


@pytest.fixture(scope="module")
def accounts_app(tmp_path_factory, checkpoint):
    import app
    from annotations.accounts import add_account, create_token
    from webapp.context import AppContext
    from webapp.settings import AppSettings

    settings = AppSettings(data_dir=tmp_path_factory.mktemp("accounts") / "data", db_url=None,
                           checkpoint=str(checkpoint), mvsa_dir=Path("/nonexistent/mvsa"), space_id=None,
                           rate_rules=(("predict", "5/minute"),), exports_keep=2)
    ctx = AppContext(settings)
    with ctx.sessions.begin() as s:  # accounts exist before the start: accounts mode
        add_account(s, "root", "admin", PASSWORD)
        add_account(s, "ana", "annotator", PASSWORD)
        add_account(s, "eve", "annotator", PASSWORD)
        add_account(s, "rita", "reviewer", PASSWORD)
        add_account(s, "bot", "annotator")
        _, token = create_token(s, "bot", "ci")
    demo = app.build_demo(ctx)
    url = app.serve(demo, ctx, quiet=True)
    assert ctx.access.mode == "accounts"
    yield ctx, url, token
    demo.close()


def login(url: str, name: str) -> Client:
    return Client(url, auth=(name, PASSWORD), verbose=False)


def test_anonymous_calls_are_refused(accounts_app, example):
    ctx, url, _ = accounts_app
    before = db_snapshot(ctx)
    with pytest.raises(Exception):
        Client(url, verbose=False)  # the page and its API sit behind the login
    with pytest.raises(Exception):
        Client(url, auth=("ana", "wrong password"), verbose=False)
    for path in ("/gradio_api/info", "/config"):
        assert httpx.get(url + path.lstrip("/")).status_code == 401
    response = httpx.post(url + "gradio_api/call/correct", json={"data": [None, "x", "negative", "", "ana", ""]})
    assert response.status_code == 401
    assert db_snapshot(ctx) == before


def test_a_label_is_the_logged_in_accounts_whatever_name_it_carries(accounts_app, example):
    ctx, url, _ = accounts_app
    ana = login(url, "ana")
    _, receipt = ana.predict(handle_file(example[0]), example[1], "negative", "", "root", "", api_name="/correct")
    assert receipt["annotator"] == "ana"
    shown = ana.predict("root", "unseen", "", api_name="/next_post")
    assert ana.predict("root", shown[0], "neutral", "", "unseen", "", api_name="/label_post")[8]["annotator"] == "ana"
    with ctx.sessions() as s:
        assert not history(s, annotator="root") and len(history(s, annotator="ana")) == 2


def test_reviewers_adjudicate_annotators_cannot(accounts_app):
    from annotations import add_post, review_post, save_correction

    ctx, url, _ = accounts_app
    with ctx.sessions.begin() as s:
        post = add_post(s, "a post ana and bob disagree on", data_dir=ctx.settings.data_dir)
        save_correction(s, post, "ana", "negative", note="sarcasm")
        save_correction(s, post, "bob", "positive")
    before = db_snapshot(ctx)
    ana = login(url, "ana")
    with pytest.raises(Exception, match="Only reviewers can adjudicate"):
        ana.predict(post, "neutral", "", False, "", api_name="/adjudicate")
    with pytest.raises(Exception, match="Only reviewers can review disputed posts"):
        ana.predict(False, "", api_name="/review")
    assert db_snapshot(ctx) == before
    rita = login(url, "rita")
    counts, table, card, verdict, shown = rita.predict(False, "", api_name="/review")
    assert shown == post and post in [row[0] for row in table["data"]] and "wait for a final label" in counts
    assert "sarcasm" in verdict and "bob" in verdict and "Tie" in verdict and f'data-post="{post}"' in card
    status, receipt, *_ = rita.predict(post, "neutral", "both half right", False, "root", api_name="/adjudicate")
    assert receipt["reviewer"] == "rita" and f"Post #{post}: final label" in status  # never the name sent
    with ctx.sessions() as s:
        adjudication = review_post(s, post)["adjudication"]
    assert (adjudication["label"], adjudication["reviewer"], adjudication["note"]) == ("neutral", "rita",
                                                                                        "both half right")


@pytest.mark.parametrize("api_name, args, message", [
    ("/export", (), "Only admins can export"),
    ("/retrain", (True,), "Only admins can retrain"),
    ("/cancel_retrain", (), "Only admins can cancel a retrain"),
    ("/serve_model", ("",), "Only admins can choose the model"),
    ("/explain", ("IMAGE", "a post", "", "ScoreCAM", 0.5, ATTRIBUTION, False), "Only admins can use ScoreCAM"),
])
def test_admin_actions_are_refused_to_annotators(accounts_app, example, api_name, args, message):
    ctx, url, _ = accounts_app
    args = tuple(handle_file(example[0]) if a == "IMAGE" else a for a in args)
    before = db_snapshot(ctx)
    with pytest.raises(Exception, match=message):
        login(url, "ana").predict(*args, api_name=api_name)
    assert db_snapshot(ctx) == before


def test_admins_export_and_only_the_newest_exports_are_kept(accounts_app):
    from gradio.utils import get_upload_folder

    ctx, url, _ = accounts_app
    root = login(url, "root")
    for _ in range(3):
        zip_path, md = root.predict(api_name="/export")
        assert zip_path.endswith(".zip") and "Exported" in md and "/" + ctx.settings.data_dir.name not in md
    exports = ctx.settings.data_dir / "exports"
    assert len(list(exports.glob("*.zip"))) == 2  # exports_keep=2
    assert len([p for p in exports.iterdir() if p.is_dir()]) == 2
    assert Path(get_upload_folder()).exists()  # the browser's copy lives in Gradio's cache (delete_cache)
    ctx.retrain.launcher = fake_worker_launcher  # a worker process that only reports progress
    status, _ = root.predict(True, api_name="/retrain")
    assert "Retraining #" in status and "by root" in status
    status, _ = root.predict(api_name="/cancel_retrain")
    assert wait_for(lambda: ctx.retrain.latest()["state"] == "cancelled")


def test_only_admins_pick_the_model(accounts_app, example):
    _, url, _ = accounts_app
    image = handle_file(example[0])
    label, _ = login(url, "eve").predict(image, example[1], "nope.pt", api_name="/predict")  # ignored for them
    assert label["label"] in ("negative", "neutral", "positive")
    with pytest.raises(Exception, match="Unknown model"):
        login(url, "root").predict(image, example[1], "nope.pt", api_name="/predict")


def test_a_token_header_passes_the_login_as_its_account(accounts_app, example):
    ctx, url, token = accounts_app
    bot = Client(url, headers={"X-MMSA-Token": token}, verbose=False)
    shown = bot.predict("root", "unseen", "", api_name="/next_post")
    assert bot.predict("root", shown[0], "positive", "", "unseen", "", api_name="/label_post")[8]["annotator"] == "bot"
    with pytest.raises(Exception):
        Client(url, headers={"X-MMSA-Token": token[:-2] + "xx"}, verbose=False)
    from annotations.accounts import list_tokens, revoke_token

    with ctx.sessions.begin() as s:
        revoke_token(s, list_tokens(s, "bot")[0]["token_id"])
    with pytest.raises(Exception):
        bot.predict("root", "unseen", "", api_name="/next_post")


def test_a_disabled_account_is_refused_even_with_a_live_session(accounts_app, example):
    from annotations.accounts import set_disabled

    ctx, url, _ = accounts_app
    eve = login(url, "eve")
    eve.predict("", "unseen", "", api_name="/next_post")
    with ctx.sessions.begin() as s:
        set_disabled(s, "eve", True)
    before = db_snapshot(ctx)
    with pytest.raises(Exception, match="The account eve is disabled: you cannot save labels"):
        eve.predict(handle_file(example[0]), example[1], "negative", "", "", "", api_name="/correct")
    assert db_snapshot(ctx) == before


def test_predictions_are_rate_limited_per_account(accounts_app, example):
    _, url, _ = accounts_app
    root = login(url, "root")
    image = handle_file(example[0])
    with pytest.raises(Exception, match=r"Too many requests: prediction is limited to 5 per minute; try again in"):
        for _ in range(6):
            root.predict(image, example[1], "", api_name="/predict")
    label, _ = login(url, "ana").predict(image, example[1], "", api_name="/predict")  # ana has her own budget
    assert label["label"] in ("negative", "neutral", "positive")
