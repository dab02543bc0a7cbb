"""Accounts: argon2 hashes (never the password), roles, disabling, API tokens stored as hashes; the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

import annotations as A
from annotations import AnnotationError
from annotations.accounts import (account_for_token, add_account, check_password, count_accounts, create_token,
                                  get_account, list_accounts, list_tokens, reset_password, revoke_token,
                                  set_disabled)
from annotations.models import Account, ApiToken

PASSWORD = "correct horse battery"


def test_password_is_hashed_and_checked(sessions, engine):
    with sessions.begin() as s:
        acc = add_account(s, "ana", "annotator", PASSWORD)
    assert acc == {**acc, "name": "ana", "role": "annotator", "disabled": False, "has_password": True}
    with sessions.begin() as s:
        stored = s.scalar(select(Account.password_hash))
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
        assert check_password(s, "ana", PASSWORD)["name"] == "ana"
        assert check_password(s, "ana", PASSWORD + "x") is None
        assert check_password(s, "nobody", PASSWORD) is None
        assert check_password(s, "ana", None) is None and check_password(s, None, PASSWORD) is None
    with engine.connect() as conn:  # the clear password is nowhere in the database
        dump = "\n".join(str(row) for row in conn.execute(text("SELECT * FROM accounts")))
    assert PASSWORD not in dump


def test_disable_enable_reset_and_roles(sessions):
    with sessions.begin() as s:
        add_account(s, "bob", "reviewer", PASSWORD)
        assert set_disabled(s, "bob", True)["disabled"] is True
        assert check_password(s, "bob", PASSWORD) is None  # a disabled account cannot sign in
        set_disabled(s, "bob", False)
        reset_password(s, "bob", "another long one")
        assert check_password(s, "bob", PASSWORD) is None and check_password(s, "bob", "another long one")
        assert get_account(s, "bob")["role"] == "reviewer" and count_accounts(s) == 1


@pytest.mark.parametrize("call, message", [
    (lambda s: add_account(s, "ana", "boss", PASSWORD), "Unknown role 'boss'"),
    (lambda s: add_account(s, "ana", "admin", "short"), "8 to 1024 characters"),
    (lambda s: add_account(s, "<b>ana</b>", "admin", PASSWORD), "may only hold letters"),
    (lambda s: add_account(s, "x" * 65, "admin", PASSWORD), "the limit is 64"),
    (lambda s: add_account(s, "ana\x00", "admin", PASSWORD), "NUL character"),
    (lambda s: add_account(s, "exists", "admin", PASSWORD), "already exists"),
    (lambda s: set_disabled(s, "ghost", True), "No account named 'ghost'"),
    (lambda s: create_token(s, "ghost"), "No account named 'ghost'"),
    (lambda s: revoke_token(s, 999), "No API token with id 999"),
])
def test_bad_account_input_is_refused_and_writes_nothing(sessions, call, message):
    with sessions.begin() as s:
        add_account(s, "exists", "annotator", PASSWORD)
    with pytest.raises(AnnotationError, match=message), sessions.begin() as s:
        call(s)
    with sessions() as s:
        assert [a["name"] for a in list_accounts(s)] == ["exists"]
        assert s.scalar(select(ApiToken.id)) is None


def test_tokens_are_stored_as_hashes_and_can_be_revoked(sessions):
    with sessions.begin() as s:
        add_account(s, "bot", "annotator")  # no password: tokens only
        token_id, token = create_token(s, "bot", "nightly")
    assert token.startswith("mmsa_") and len(token) > 40
    with sessions.begin() as s:
        assert s.scalar(select(ApiToken.token_sha256)) != token and token not in str(list_tokens(s, "bot"))
        assert account_for_token(s, token)["name"] == "bot"
        assert list_tokens(s, "bot")[0]["last_used_at"] is not None
        assert account_for_token(s, token + "x") is None and account_for_token(s, "garbage") is None
        assert check_password(s, "bot", "") is None  # a token-only account has no password login
    with sessions.begin() as s:
        set_disabled(s, "bot", True)
        assert account_for_token(s, token) is None  # disabling stops its tokens at once
        set_disabled(s, "bot", False)
        assert revoke_token(s, token_id)["revoked_at"] is not None
        assert account_for_token(s, token) is None


def run_cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "annotations.accounts", "--db", db_url, *args], input=stdin,
                          capture_output=True, text=True, cwd=Path(A.__file__).parents[1], timeout=120)


def test_cli_add_list_disable_token_revoke(db_url, data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    first = run_cli(db_url, "add", "ana", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    assert "added ana (admin)" in first.stdout and "restart" in first.stdout  # the first account: restart
    second = run_cli(db_url, "add", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert "added bob (annotator)" in second.stdout and "restart" not in second.stdout
    assert PASSWORD not in first.stdout + first.stderr + second.stdout + second.stderr
    assert run_cli(db_url, "list").stdout.split() == ["ana", "admin", "enabled", "bob", "annotator", "enabled"]
    assert "bob is disabled" in run_cli(db_url, "disable", "bob").stdout
    token_out = run_cli(db_url, "token", "ana", "--label", "ci").stdout
    token = token_out.strip().splitlines()[-1]
    assert token.startswith("mmsa_") and "#1" in token_out
    assert "live" in run_cli(db_url, "tokens", "ana").stdout
    assert "revoked" in run_cli(db_url, "revoke", "1").stdout
    bad = run_cli(db_url, "add", "eve", "--password-stdin", stdin="short\n")
    assert bad.returncode != 0 and "8 to 1024 characters" in bad.stderr
    engine = A.create_engine_from_url(db_url)
    with A.create_sessionmaker(engine)() as s:
        assert check_password(s, "ana", PASSWORD) and account_for_token(s, token) is None
        assert get_account(s, "bob")["disabled"] and get_account(s, "eve") is None
    engine.dispose()
