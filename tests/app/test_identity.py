"""Who acts and what they may do, without a server: modes, identities, roles, limits, escaping, redaction."""
from __future__ import annotations

import types

import gradio as gr
import pytest

from webapp.formatting import md_escape
from webapp.identity import AccessControl, Identity, client_address, decide_mode, require_role
from webapp.inputs import check_post_id, redact_paths, user_errors
from webapp.ratelimit import RateLimits

PASSWORD = "a long enough password"


def request(headers=None, username=None, host="10.0.0.7"):
    return types.SimpleNamespace(headers=headers or {}, username=username, client=types.SimpleNamespace(host=host))


def profile(username: str):
    return types.SimpleNamespace(username=username)


@pytest.fixture
def accounts(tmp_path):
    """A migrated SQLite database with an admin, a reviewer, an annotator and a disabled account."""
    from annotations import create_engine_from_url, create_sessionmaker, init_db
    from annotations.accounts import add_account, create_token, set_disabled

    engine = create_engine_from_url(f"sqlite:///{tmp_path / 'db.sqlite'}")
    init_db(engine)
    sessions = create_sessionmaker(engine)
    with sessions.begin() as s:
        add_account(s, "root", "admin", PASSWORD)
        add_account(s, "rev", "reviewer", PASSWORD)
        add_account(s, "ana", "annotator", PASSWORD)
        add_account(s, "gone", "annotator", PASSWORD)
        set_disabled(s, "gone", True)
        _, token = create_token(s, "ana")
    yield types.SimpleNamespace(sessions=lambda: sessions, token=token)
    engine.dispose()


def test_the_mode_is_a_space_with_sign_in_else_accounts_else_open_never_open_on_a_space():
    assert decide_mode(on_space=True, sign_in=True, n_accounts=3) == "space"
    assert decide_mode(on_space=False, sign_in=False, n_accounts=1) == "accounts"
    assert decide_mode(on_space=True, sign_in=False, n_accounts=1) == "accounts"
    assert decide_mode(on_space=False, sign_in=False, n_accounts=0) == "open"
    assert decide_mode(on_space=True, sign_in=False, n_accounts=0) == "read-only"


def test_space_identities_come_from_the_profile_never_from_a_name(accounts):
    access = AccessControl("space", accounts.sessions, admins="Boss, other", annotators=None)
    assert access.identify(request(), None, typed_name="root") == Identity(None, "anonymous", "space")
    assert access.identify(request(), profile("boss")) == Identity("boss", "admin", "space")  # MMSA_ADMINS
    assert access.identify(request(), profile("rev")).role == "reviewer"  # accounts table, same name
    assert access.identify(request(), profile("ana")).role == "annotator"  # an account's annotator role
    assert access.identify(request(), profile("anyone")) == Identity("anyone", "annotator", "space")
    assert access.identify(request(), profile("gone")).role == "anonymous"  # disabled
    listed = AccessControl("space", accounts.sessions, admins="boss", annotators="ana, bea")
    assert listed.identify(request(), profile("bea")).role == "annotator"
    outsider = listed.identify(request(), profile("anyone"))
    assert outsider.role == "anonymous" and "annotator list" in outsider.reason


def test_account_identities_are_looked_up_on_every_request(accounts):
    access = AccessControl("accounts", accounts.sessions)
    assert access.identify(request(username="root"), typed_name="ana") == Identity("root", "admin", "account")
    assert access.identify(request(username="ana"), typed_name="root").name == "ana"
    assert access.identify(request(username="gone")).role == "anonymous"
    assert access.identify(request(username=None)).role == "anonymous"
    assert access.check_login("ana", PASSWORD) and not access.check_login("ana", "wrong password")
    assert not access.check_login("gone", PASSWORD)
    from annotations.accounts import set_disabled

    with accounts.sessions().begin() as s:
        set_disabled(s, "ana", True)
    assert access.identify(request(username="ana")).role == "anonymous"  # a live session stops working at once


def test_a_token_identifies_its_account_in_every_mode(accounts):
    for mode in ("space", "accounts", "open", "read-only"):
        who = AccessControl(mode, accounts.sessions).identify(request({"x-mmsa-token": accounts.token}), None, "root")
        assert who == Identity("ana", "annotator", "token")
    with pytest.raises(gr.Error, match="no valid API token"):
        AccessControl("space", accounts.sessions).identify(request({"x-mmsa-token": "mmsa_forged"}))


def test_open_mode_trusts_the_typed_name_and_checks_it(accounts):
    access = AccessControl("open", accounts.sessions)
    assert access.identify(request(), None, " ana ") == Identity("ana", "admin", "open")
    assert access.identify(request(), None, "") == Identity(None, "admin", "open")
    with pytest.raises(gr.Error, match="may only hold letters"):
        access.identify(request(), None, "<img src=x>")
    assert "anyone who can reach" in access.banner(Identity(None, "admin", "open"))


def test_roles_refuse_with_a_clear_message():
    anon, ann = Identity(None, "anonymous", "space"), Identity("ana", "annotator", "account")
    with pytest.raises(gr.Error, match="Sign in to save labels"):
        require_role(anon, "annotator", "save labels")
    with pytest.raises(gr.Error, match="Only admins can export"):
        require_role(ann, "admin", "export")
    with pytest.raises(gr.Error, match="Only reviewers can adjudicate"):
        require_role(ann, "reviewer", "adjudicate")
    assert require_role(Identity("r", "reviewer", "account"), "annotator").role == "reviewer"
    with pytest.raises(gr.Error, match="read-only: you cannot save labels"):
        require_role(Identity(None, "anonymous", "space", "This demo is read-only"), "annotator", "save labels")


def test_rate_limits_key_people_by_name_and_visitors_by_address():
    limits = RateLimits({"predict": "2/minute"})
    limits.check("predict", "a", "prediction")
    limits.check("predict", "a", "prediction")
    limits.check("predict", "b", "prediction")  # someone else has their own budget
    with pytest.raises(gr.Error, match=r"limited to 2 per minute; try again in \d+ s"):
        limits.check("predict", "a", "prediction")
    RateLimits({"predict": "1/minute"}, enabled=False).check("predict", "a", "x")  # off: never refuses
    assert Identity("ana", "annotator", "account").limit_key == "account:ana"
    assert Identity("ana", "admin", "open").limit_key is None  # open mode: any name can be typed
    assert Identity(None, "anonymous", "space").limit_key is None
    proxied = request({"x-forwarded-for": "203.0.113.9, 10.0.0.1"}, host="10.0.0.1")
    assert client_address(proxied, behind_proxy=True) == "203.0.113.9"
    assert client_address(proxied, behind_proxy=False) == "10.0.0.1"  # not behind a Space: never trust the header


def test_post_ids_that_are_whole_numbers_pass():
    assert check_post_id(7) == 7 and check_post_id(7.0) == 7 and check_post_id(2**63 - 1) == 2**63 - 1


@pytest.mark.parametrize("raw", ["[x](javascript:alert(1))", "![](http://evil.example/t.png)", "<img src=x onerror=1>",
                                 "**bold** _it_ `code` # head", "www.evil.example", "a\n# heading\n- item", "$$x$$"])
def test_md_escape_leaves_nothing_markdown_or_html_can_act_on(raw):
    import markdown_it

    html = markdown_it.MarkdownIt("commonmark").render(md_escape(raw))  # the browser test checks Gradio's own
    for active in ("<a", "<img", "<strong", "<em", "<code", "<h1", "<li"):
        assert active not in html
    assert "\n" not in md_escape(raw)


def test_redaction_keeps_file_names_only():
    msg = "Image file not found: /srv/mmsa/data/images/ab/x.png (see /etc/passwd); http://host/a/b stays, 1/2 too"
    assert redact_paths(msg) == "Image file not found: …/x.png (see …/passwd); http://host/a/b stays, 1/2 too"
    assert redact_paths(r"Cannot load C:\Users\me\model.pt") == r"Cannot load …\model.pt"


@pytest.mark.parametrize("who, shown", [(Identity("ana", "annotator", "account"), "…/annotations.sqlite"),
                                        (Identity(None, "anonymous", "space"), "…/annotations.sqlite"),
                                        (Identity("root", "admin", "account"), "/srv/mmsa/data/annotations.sqlite")])
def test_errors_show_server_paths_to_admins_only(who, shown):
    with pytest.raises(gr.Error) as info, user_errors(who):
        raise ValueError("Cannot open /srv/mmsa/data/annotations.sqlite")
    assert str(info.value.message) == f"Cannot open {shown}"
