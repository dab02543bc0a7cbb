"""Accounts with roles, argon2 password hashes and API tokens for scripts.

    with sessions.begin() as s:
        add_account(s, "ana", "annotator", password)      # the hash is stored, never the password
        check_password(s, "ana", password)                # the account as a dict, or None
        token_id, token = create_token(s, "ana", "nightly script")   # `token` is shown once
        account_for_token(s, token)                       # the account, or None (revoked, disabled, unknown)

Roles: `annotator` < `reviewer` < `admin` (each may do what the one before may). Tokens are 32 random
bytes (`mmsa_` + urlsafe base64); only their sha256 is stored, enough for a high-entropy secret, and the
lookup is by that hash. The app turns from open mode into accounts mode when the first account exists
(at its next start).

CLI (settings: `--db URL`, else `$MMSA_DB_URL`, else SQLite under `$MMSA_DATA_DIR`):

    python -m annotations.accounts add NAME --role annotator|reviewer|admin --password-stdin
    python -m annotations.accounts list | disable NAME | enable NAME | reset NAME --password-stdin
    python -m annotations.accounts token NAME [--label L] | tokens NAME | revoke TOKEN_ID
"""
from __future__ import annotations

import argparse
import getpass
import hashlib
import logging
import secrets
import sys
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotations.errors import AnnotationError
from annotations.labels import check_clean, check_name
from annotations.models import ROLES, Account, ApiToken, utcnow

log = logging.getLogger(__name__)

TOKEN_PREFIX = "mmsa_"
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 8, 1024
LAST_USED_EVERY_S = 60  # refresh api_tokens.last_used_at at most this often (a read must not write each time)
_hasher = None


def _ph():
    """argon2id with the library's default (RFC 9106 low-memory) parameters; created on first use."""
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise AnnotationError(f"Unknown role {role!r}; choose from {list(ROLES)}")
    return role


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise AnnotationError(f"A password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    return check_clean(password, "The password")


def _account_dict(row: Account) -> dict[str, Any]:
    return {"account_id": row.id, "name": row.name, "role": row.role, "disabled": row.disabled,
            "has_password": row.password_hash is not None, "created_at": row.created_at.isoformat()}


def _require_account(session: Session, name: str) -> Account:
    row = session.scalar(select(Account).where(Account.name == check_name(name, "Account name")))
    if row is None:
        raise AnnotationError(f"No account named {name.strip()!r}; see `python -m annotations.accounts list`")
    return row


def count_accounts(session: Session) -> int:
    """How many accounts exist (disabled ones too: their presence still means "sign-in required")."""
    return session.scalar(select(func.count()).select_from(Account)) or 0


def add_account(session: Session, name: str, role: str, password: Optional[str] = None) -> dict[str, Any]:
    """Create an account; `password` None makes one that signs in with API tokens only."""
    name, role = check_name(name, "Account name"), check_role(role)
    pw_hash = _ph().hash(_check_password(password)) if password is not None else None
    if session.scalar(select(Account.id).where(Account.name == name)) is not None:
        raise AnnotationError(f"An account named {name!r} already exists")
    row = Account(name=name, role=role, password_hash=pw_hash, disabled=False)
    session.add(row)
    session.flush()
    log.info("added account %s (%s)", name, role)
    return _account_dict(row)


def get_account(session: Session, name: str) -> Optional[dict[str, Any]]:
    """The account called `name`, or None (also for a name that breaks the name rules)."""
    try:
        name = check_name(name, "Account name")
    except AnnotationError:
        return None
    row = session.scalar(select(Account).where(Account.name == name))
    return _account_dict(row) if row else None


def list_accounts(session: Session) -> list[dict[str, Any]]:
    return [_account_dict(r) for r in session.scalars(select(Account).order_by(Account.id))]


def set_disabled(session: Session, name: str, disabled: bool) -> dict[str, Any]:
    """Disable (or enable again) an account: its logins and tokens stop working at once."""
    row = _require_account(session, name)
    row.disabled = bool(disabled)
    session.flush()
    return _account_dict(row)


def set_role(session: Session, name: str, role: str) -> dict[str, Any]:
    row = _require_account(session, name)
    row.role = check_role(role)
    session.flush()
    return _account_dict(row)


def reset_password(session: Session, name: str, password: str) -> dict[str, Any]:
    row = _require_account(session, name)
    row.password_hash = _ph().hash(_check_password(password))
    session.flush()
    return _account_dict(row)


def check_password(session: Session, name: Any, password: Any) -> Optional[dict[str, Any]]:
    """The enabled account when `password` is its password, else None. Unknown names cost a hash too,
    so the time taken does not tell which names exist."""
    from argon2.exceptions import InvalidHashError, VerificationError

    row = None
    if isinstance(password, str) and len(password) <= MAX_PASSWORD_CHARS:
        try:
            row = session.scalar(select(Account).where(Account.name == check_name(name, "Account name")))
        except AnnotationError:
            row = None
    stored = row.password_hash if row is not None and row.password_hash else None
    try:
        _ph().verify(stored or _dummy_hash(), password if isinstance(password, str) else "")
    except (VerificationError, InvalidHashError):
        return None
    if stored is None or row.disabled:
        return None
    if _ph().check_needs_rehash(stored):
        row.password_hash = _ph().hash(password)
    return _account_dict(row)


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(_ph().hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _token_sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_token(session: Session, name: str, label: str = "script") -> tuple[int, str]:
    """A new API token for the account: (token id, the token). Only its sha256 is stored: show it once."""
    row = _require_account(session, name)
    label = check_name(label, "Token label")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    tok = ApiToken(account_id=row.id, label=label, token_sha256=_token_sha(token))
    session.add(tok)
    session.flush()
    log.info("created API token #%d for %s", tok.id, row.name)
    return tok.id, token


def _token_dict(tok: ApiToken, name: str) -> dict[str, Any]:
    iso = lambda t: t.isoformat() if t else None  # noqa: E731
    return {"token_id": tok.id, "account": name, "label": tok.label, "created_at": iso(tok.created_at),
            "last_used_at": iso(tok.last_used_at), "revoked_at": iso(tok.revoked_at)}


def list_tokens(session: Session, name: str) -> list[dict[str, Any]]:
    row = _require_account(session, name)
    toks = session.scalars(select(ApiToken).where(ApiToken.account_id == row.id).order_by(ApiToken.id))
    return [_token_dict(t, row.name) for t in toks]


def revoke_token(session: Session, token_id: int) -> dict[str, Any]:
    tok = session.get(ApiToken, token_id) if isinstance(token_id, int) and not isinstance(token_id, bool) else None
    if tok is None:
        raise AnnotationError(f"No API token with id {token_id!r}")
    if tok.revoked_at is None:
        tok.revoked_at = utcnow()
        session.flush()
    return _token_dict(tok, session.get(Account, tok.account_id).name)


def account_for_token(session: Session, token: Any) -> Optional[dict[str, Any]]:
    """The enabled account a live token belongs to, else None; notes when the token was last used."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    found = session.execute(select(ApiToken, Account).join(Account, Account.id == ApiToken.account_id)
                            .where(ApiToken.token_sha256 == _token_sha(token))).first()
    if found is None:
        return None
    tok, row = found
    if tok.revoked_at is not None or row.disabled:
        return None
    now = utcnow()
    if tok.last_used_at is None or (now - tok.last_used_at).total_seconds() > LAST_USED_EVERY_S:
        tok.last_used_at = now
        session.flush()
    return _account_dict(row)


# ---- CLI -------------------------------------------------------------------------------------------

RESTART_NOTE = ("The app reads whether accounts exist when it starts: restart it if it is running, "
                "so that it asks for a login (until then it stays in the mode it started in).")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise SystemExit("The two passwords differ; nothing changed")
    return first


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m annotations.accounts", description="Manage the app's accounts.")
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL, else SQLite under "
                                               "$MMSA_DATA_DIR or ./data)")
    sub = ap.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="annotator")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--no-password", action="store_true", help="no password login: API tokens only")
    sub.add_parser("list", help="list the accounts")
    for cmd in ("disable", "enable"):
        sub.add_parser(cmd, help=f"{cmd} an account").add_argument("name")
    role = sub.add_parser("role", help="change an account's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLES)
    reset = sub.add_parser("reset", help="set a new password")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true")
    token = sub.add_parser("token", help="create an API token (printed once)")
    token.add_argument("name")
    token.add_argument("--label", default="script")
    sub.add_parser("tokens", help="list an account's tokens").add_argument("name")
    sub.add_parser("revoke", help="revoke a token").add_argument("token_id", type=int)
    return ap


def _run(s: Session, args: argparse.Namespace, had_accounts: bool) -> str:
    if args.command == "add":
        password = None if args.no_password else _read_password(args.password_stdin)
        acc = add_account(s, args.name, args.role, password)
        return f"added {acc['name']} ({acc['role']})" + ("" if had_accounts else f"\n{RESTART_NOTE}")
    if args.command == "list":
        rows = list_accounts(s)
        return "\n".join(f"{a['name']}\t{a['role']}\t{'disabled' if a['disabled'] else 'enabled'}" for a in rows) \
            or "no accounts (the app runs in open mode outside a Space)"
    if args.command in ("disable", "enable"):
        acc = set_disabled(s, args.name, args.command == "disable")
        return f"{acc['name']} is {'disabled' if acc['disabled'] else 'enabled'}"
    if args.command == "role":
        return f"{set_role(s, args.name, args.role)['name']} is now {args.role}"
    if args.command == "reset":
        return f"new password set for {reset_password(s, args.name, _read_password(args.password_stdin))['name']}"
    if args.command == "token":
        token_id, token = create_token(s, args.name, args.label)
        return (f"token #{token_id} for {args.name} (shown once; send it as the X-MMSA-Token header):\n{token}")
    if args.command == "tokens":
        return "\n".join(f"#{t['token_id']}\t{t['label']}\tcreated {t['created_at'][:19]}\t"
                         f"last used {(t['last_used_at'] or 'never')[:19]}\t"
                         f"{'revoked ' + t['revoked_at'][:19] if t['revoked_at'] else 'live'}"
                         for t in list_tokens(s, args.name)) or "no tokens"
    t = revoke_token(s, args.token_id)
    return f"token #{t['token_id']} of {t['account']} is revoked"


def main(argv: Optional[list[str]] = None) -> None:
    from annotations.db import create_engine_from_url, create_sessionmaker, init_db

    args = _parser().parse_args(argv)
    engine = create_engine_from_url(args.db)
    init_db(engine)
    try:
        with create_sessionmaker(engine).begin() as s:
            print(_run(s, args, count_accounts(s) > 0))
    except AnnotationError as e:
        raise SystemExit(f"error: {e}") from None
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
