"""The annotator's name from the Hugging Face sign-in, when the app runs on a Space with ``hf_oauth: true``."""
from __future__ import annotations

import importlib.util
import logging
import os

import gradio as gr

log = logging.getLogger(__name__)


def sign_in_available(on_space: bool) -> bool:
    """True on a real Space (Gradio itself checks SYSTEM=spaces; elsewhere it mocks the sign-in with the local
    HF token) with OAuth switched on (``hf_oauth: true``, which sets OAUTH_CLIENT_ID) and Gradio's ``oauth``
    extra installed (authlib, itsdangerous: ``pip install gradio[oauth]``)."""
    if not on_space or os.environ.get("SYSTEM") != "spaces":
        return False
    missing = [m for m in ("authlib", "itsdangerous") if importlib.util.find_spec(m) is None]
    if missing:
        log.warning("no Hugging Face sign-in: %s missing (install gradio[oauth]); annotators type their name",
                    missing)
    if not os.environ.get("OAUTH_CLIENT_ID"):
        log.warning("no Hugging Face sign-in: set `hf_oauth: true` in the README front matter")
        return False
    return not missing


def signed_in_name(profile: gr.OAuthProfile | None):
    """On page load: the signed-in user's name, locked; unchanged when nobody is signed in."""
    if profile is None:
        return gr.Textbox(interactive=True)
    return gr.Textbox(value=profile.username, interactive=False)
