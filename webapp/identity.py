"""Who acts: resolved once per request, at the edge, from the server's side of the request.

The access mode is decided once, at start-up (`decide_mode`):

- ``space``: on a Hugging Face Space with sign-in (``hf_oauth: true``). The signed-in Hugging Face user
  (``gr.OAuthProfile``) acts; anonymous visitors may analyze only. Admins: names in ``MMSA_ADMINS``, or
  accounts-table rows with role admin/reviewer under the same name; ``MMSA_ANNOTATORS``, when set, limits
  who else may annotate.
- ``accounts``: at least one account in the database. Gradio asks for a login (``auth=`` checked against the
  accounts table) and the logged-in account acts, looked up again on every request (disabling works at once).
- ``open``: no accounts, not on a Space: one person on their own machine types a name and may do
  everything; the server binds to 127.0.0.1 and the page says that anyone who can reach it can write.
- ``read-only``: a Space without sign-in and without accounts: anyone may analyze, nobody may write.

In every mode a request with the header ``X-MMSA-Token`` acts as that token's account. Handlers call
``AccessControl.identify(request, profile, typed_name)`` and get a frozen ``Identity``; no handler uses a
name sent by the client, except the typed name in open mode.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .inputs import user_error, user_errors

log = logging.getLogger(__name__)

ROLES = ("anonymous", "annotator", "reviewer", "admin")  # each may do what the one before may, and more
MODES = ("space", "accounts", "open", "read-only")
TOKEN_HEADER = "x-mmsa-token"
_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Identity:
    name: str | None  # who acts (None: nobody signed in, or open mode before a name is typed)
    role: str  # one of ROLES
    via: str  # "space" | "account" | "token" | "open": how the name was established
    reason: str = ""  # why a known person is still anonymous (disabled account, not on the annotator list)

    def at_least(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def limit_key(self) -> str | None:
        """The rate-limit key of a signed-in person; None: key by the client's address instead (anonymous
        visitors, and open mode, where anyone may type any name)."""
        return f"{self.via}:{self.name}" if self.name and self.via != "open" and self.role != "anonymous" else None


def require_role(identity: Identity, role: str, action: str = "do this") -> Identity:
    """``identity`` when its role is at least ``role``; else a ``gr.Error`` such as "Sign in to save labels"
    or "Only admins can export". Call it before anything is written."""
    if identity.at_least(role):
        return identity
    if identity.role == "anonymous":
        raise user_error(f"{identity.reason}: you cannot {action}" if identity.reason else f"Sign in to {action}")
    raise user_error(f"Only {role}s can {action}")


def require_name(identity: Identity, action: str = "save labels") -> str:
    """The acting person's name (open mode: the typed one); an error that says where to type it."""
    if not identity.name:
        raise user_error(f"Who is annotating? Type your name in the box at the top of the page to {action}")
    return identity.name


def decide_mode(on_space: bool, sign_in: bool, n_accounts: int) -> str:
    """The access mode: a Space with sign-in, else accounts when any exist, else open (never on a Space)."""
    if on_space and sign_in:
        return "space"
    if n_accounts:
        return "accounts"
    return "read-only" if on_space else "open"


def client_address(request, behind_proxy: bool) -> str:
    """The client's address: behind a Space's proxy the first ``X-Forwarded-For`` hop, else the socket's."""
    if request is None:
        return "local"
    if behind_proxy:
        forwarded = (request.headers.get("x-forwarded-for") or "").split(",")[0].strip()
        if forwarded:
            return forwarded
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def _names(value: str | None) -> frozenset[str] | None:
    """A comma-separated list of Hugging Face user names, case-folded (None when unset)."""
    if value is None or not value.strip():
        return None
    return frozenset(n.strip().casefold() for n in value.split(",") if n.strip())


class AccessControl:
    """The mode and the lookups behind ``identify``; ``sessions`` is a callable returning the sessionmaker."""

    def __init__(self, mode: str, sessions, admins: str | None = None, annotators: str | None = None):
        if mode not in MODES:
            raise ValueError(f"Unknown access mode {mode!r}; choose from {MODES}")
        self.mode, self._sessions = mode, sessions
        self.admins, self.annotators = _names(admins) or frozenset(), _names(annotators)

    def identify(self, request=None, profile=None, typed_name: str | None = None) -> Identity:
        """Who sends ``request``: its API token, else the mode's own sign-in (see the module docstring)."""
        token = request.headers.get(TOKEN_HEADER) if request is not None else None
        if token:
            return self._from_token(token)
        if self.mode == "open":
            from annotations.labels import check_annotator_name

            with user_errors():
                name = check_annotator_name(typed_name) if typed_name and str(typed_name).strip() else None
            return Identity(name, "admin", "open")
        if self.mode == "space":
            username = getattr(profile, "username", None) if profile is not None else None
            return self._space_user(username) if username else Identity(None, "anonymous", "space")
        if self.mode == "accounts":
            return self._account(getattr(request, "username", None))
        return Identity(None, "anonymous", "space", reason="This demo is read-only (the Space has no sign-in)")

    def _from_token(self, token: str) -> Identity:
        from annotations.accounts import account_for_token

        with self._sessions().begin() as s:
            acc = account_for_token(s, token)
        if acc is None:
            raise user_error("The X-MMSA-Token header holds no valid API token (unknown, revoked, or its account "
                             "is disabled)")
        return Identity(acc["name"], acc["role"], "token")

    def _account(self, username: str | None) -> Identity:
        from annotations.accounts import get_account

        if not username:
            return Identity(None, "anonymous", "account")
        with self._sessions()() as s:
            acc = get_account(s, username)
        if acc is None or acc["disabled"]:
            return Identity(username, "anonymous", "account", reason=f"The account {username} is disabled")
        return Identity(acc["name"], acc["role"], "account")

    def _space_user(self, username: str) -> Identity:
        from annotations.accounts import get_account

        with self._sessions()() as s:
            acc = get_account(s, username)
        if acc is not None and acc["disabled"]:
            return Identity(username, "anonymous", "space", reason=f"The account {username} is disabled")
        if username.casefold() in self.admins:
            return Identity(username, "admin", "space")
        if acc is not None and acc["role"] in ("admin", "reviewer"):
            return Identity(username, acc["role"], "space")
        if self.annotators is not None and username.casefold() not in self.annotators:
            return Identity(username, "anonymous", "space",
                            reason=f"{username} is not on this Space's annotator list (MMSA_ANNOTATORS)")
        return Identity(username, "annotator", "space")

    def check_login(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` callable in accounts mode: the password of an enabled account."""
        from annotations.accounts import check_password

        with self._sessions().begin() as s:  # begin: an outdated hash is upgraded on success
            ok = check_password(s, name, password) is not None
        log.info("login %s for %r", "accepted" if ok else "refused", str(name)[:64])
        return ok

    def banner(self, identity: Identity) -> str:
        """The line under the title: who you are here and what you may do."""
        from .formatting import md_escape

        if self.mode == "open":
            return ("⚠ **Open mode**: no accounts exist, so anyone who can reach this app can save, export and "
                    "retrain under any name. Fine on your own machine (it listens on 127.0.0.1); to host it, "
                    "see docs/security.md.")
        if identity.role == "anonymous":
            if self.mode == "read-only":
                return "Read-only demo: analyze posts; saving labels is switched off on this Space."
            if identity.reason:
                return f"{md_escape(identity.reason)}. You can analyze posts."
            return "Not signed in: you can analyze posts. **Sign in** to annotate."
        return f"Signed in as **{md_escape(identity.name or '')}** ({identity.role})."
