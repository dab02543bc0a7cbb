"""Sign-in at the edge: whether the Hugging Face sign-in can work here, the page's who-am-I line, and API
tokens accepted by Gradio's login wall in accounts mode."""
from __future__ import annotations

import importlib.util
import inspect
import logging
import os

import gradio as gr

from .context import AppContext
from .identity import TOKEN_HEADER

log = logging.getLogger(__name__)


def sign_in_available(on_space: bool) -> bool:
    """True on a real Space (Gradio itself checks SYSTEM=spaces; elsewhere it mocks the sign-in with the local
    HF token) with OAuth switched on (``hf_oauth: true``, which sets OAUTH_CLIENT_ID) and Gradio's ``oauth``
    extra installed (authlib, itsdangerous: ``pip install gradio[oauth]``)."""
    if not on_space or os.environ.get("SYSTEM") != "spaces":
        return False
    missing = [m for m in ("authlib", "itsdangerous") if importlib.util.find_spec(m) is None]
    if missing:
        log.warning("no Hugging Face sign-in: %s missing (install gradio[oauth]); nobody can annotate", missing)
    if not os.environ.get("OAUTH_CLIENT_ID"):
        log.warning("no Hugging Face sign-in: set `hf_oauth: true` in the README front matter")
        return False
    return not missing


def _saved_name(value) -> str:
    """A name kept in the browser, if it is still a valid annotator name (else none: the browser's storage is
    the client's, as hostile as any input)."""
    from annotations.labels import check_annotator_name

    try:
        return check_annotator_name(value) if isinstance(value, str) and value.strip() else ""
    except ValueError:
        return ""


class SessionHandlers:
    """On page load: the name field (typed in open mode, else the signed-in name, locked), the who-am-I line,
    the storage banner (admins only), and the queue the browser kept from the last visit."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def on_load(self, kept_name: str | None = None, kept_queue: str | None = None, request: gr.Request = None,
                profile: gr.OAuthProfile | None = None):
        """-> (name field, who-am-I line, storage banner, queue strategy); the page then reopens the kept tab."""
        from annotations import STRATEGIES

        from .settings import storage_warning

        who = self.ctx.identify(request, profile)
        if self.ctx.access.mode == "open":  # the name typed last time; never blank out one typed meanwhile
            saved = _saved_name(kept_name)
            name = gr.Textbox(value=saved, interactive=True) if saved else gr.Textbox(interactive=True)
        else:
            name = gr.Textbox(value=who.name or "", interactive=False,
                              placeholder="sign in to annotate" if self.ctx.access.mode != "read-only" else "")
        banner = gr.Markdown(visible=bool(storage_warning(self.ctx.settings)) and who.is_admin)
        strategy = kept_queue if isinstance(kept_queue, str) and kept_queue in STRATEGIES else gr.skip()
        return name, self.ctx.access.banner(who), banner, strategy


def accept_token_logins(app, ctx: AppContext) -> None:
    """Let a request carrying a valid ``X-MMSA-Token`` through Gradio's login wall (accounts mode), as that
    token's account: Gradio's "current user" dependency is overridden through FastAPI's
    ``dependency_overrides``; everything else keeps Gradio's cookie login."""
    if ctx.access.mode != "accounts":
        return
    original = _gradio_current_user(app)

    async def current_user(request):
        token = request.headers.get(TOKEN_HEADER)
        if token:
            from anyio import to_thread

            from annotations.accounts import account_for_token

            def lookup():
                with ctx.sessions.begin() as s:
                    return account_for_token(s, token)

            account = await to_thread.run_sync(lookup)
            if account is not None:
                return account["name"]
        user = original(request)
        return await user if inspect.isawaitable(user) else user

    import fastapi

    current_user.__annotations__ = {"request": fastapi.Request}
    app.dependency_overrides[original] = current_user


def _gradio_current_user(app):
    """Gradio's ``get_current_user`` dependency (behind its ``login_check``), found on its routes."""
    def walk(dependant):
        for dep in dependant.dependencies:
            if getattr(dep.call, "__name__", "") == "get_current_user":
                return dep.call
            found = walk(dep)
            if found is not None:
                return found
        return None

    for route in app.routes:
        dependant = getattr(route, "dependant", None)
        if dependant is not None and (found := walk(dependant)) is not None:
            return found
    raise RuntimeError("Cannot find Gradio's get_current_user dependency: API tokens cannot pass the login "
                       "wall with this Gradio version")
