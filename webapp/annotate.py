"""Annotate tab: the next post from the queue with the model's suggestion, label / skip / undo, progress.

Every action is one short transaction. A post is shown as one HTML card (image, text and id together) with
the model's suggestion; its explanation follows in a second event and always names its post. While the
annotator looks at a post, the next one is prepared in the background (queue pick, prediction, display
image), so that a label is a database write plus returning that card; its explanation starts as soon as
the explanation of the post on screen is done. The post on screen is remembered per browser session
(``request.session_hash``): an explanation for any other post is dropped (``gr.skip()``).
"""
from __future__ import annotations

import html
import logging
from dataclasses import dataclass

import gradio as gr

from .cards import (OVERLAY_SIDE, explaining_card, explanation_card, history_html, message_card,
                    no_explanation_card, post_card, post_image_url, progress_html, suggestion_html, to_data_url)
from .context import AppContext
from .formatting import history_rows
from .identity import Identity, require_name, require_role
from .inputs import check_post_id, user_error, user_errors
from .prefetch import FutureCache, Screens, Stale

log = logging.getLogger(__name__)

HISTORY_LIMIT = 10
N_OUTPUTS = 10  # what every queue action returns, see ``_show``
EXPLAIN_METHOD = "GradCAM"  # annotators need speed: the fast default, no faithfulness pass
WAIT_S = 120  # the longest a request waits for background work before giving up on it


@dataclass(frozen=True)
class Prepared:
    """A post ready to show: its card, the suggestion, and the state the later events read."""

    post_id: int
    card: str  # post card HTML
    suggestion: str  # suggestion HTML
    pred: dict | None  # {"label", "probs", "prediction_id", "model"} (API clients read it)
    state: dict  # post_id, prediction_id, image, text, model (the selector value it was made for)


def _session(request) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


class AnnotateHandlers:
    """Every action is the signed-in annotator's (open mode: the typed name's); ``name`` from a client is
    ignored otherwise, so nobody labels, skips or undoes under someone else's name."""

    def __init__(self, ctx: AppContext, gpu=lambda fn: fn):
        self.ctx = ctx
        self.screens = Screens()
        self.explanations = FutureCache()
        # The model runs in the background; on a ZeroGPU Space these two get the GPU.
        self._predict = gpu(self._predict)
        self._explain_post = gpu(self._explain_post)

    # ---- identity ------------------------------------------------------------------------------------

    def _annotator(self, request, profile, typed: str | None) -> tuple[Identity, str]:
        who = require_role(self.ctx.identify(request, profile, typed), "annotator", "annotate")
        return who, require_name(who, "annotate")

    @staticmethod
    def _model(who: Identity, model: str | None) -> str | None:
        return model if who.is_admin else None  # everyone else gets the model served to everyone

    # ---- preparing a post ----------------------------------------------------------------------------

    def _predict(self, model: str | None, image: str, text: str):
        choice, predictor = self.ctx.model(model)
        return choice, predictor.predict(image, text)

    def _suggest(self, post: dict, model: str | None):
        """(the model's prediction for a queued post or None, the model's choice); reused from the database
        when this model already made it, else predicted and recorded."""
        from annotations import record_prediction

        choice, _ = self.ctx.model(model)
        pred = post.get("prediction")
        if pred and pred["model_name"] == choice.name:
            return {"prediction_id": pred["prediction_id"], "label": pred["label"], "probs": pred["probs"],
                    "model": choice.name}, choice
        if not post.get("image_path") or not (post.get("text") or "").strip():
            return None, choice  # the model needs both an image and a text
        choice, p = self._predict(model, post["image_path"], post["text"])
        with self.ctx.sessions.begin() as s:
            pred_id = record_prediction(s, post["post_id"], p.label, p.probabilities, choice.name)
        return {"prediction_id": pred_id, "label": p.label, "probs": p.probabilities, "model": choice.name}, choice

    def _prepare(self, post: dict, model: str | None) -> Prepared:
        pred, choice = self._suggest(post, model)
        image = post.get("image_path")
        text = post.get("text") or ""
        card = post_card(post["post_id"], text, post_image_url(image) if image else None)
        state = {"post_id": post["post_id"], "prediction_id": pred["prediction_id"] if pred else None,
                 "image": image, "text": text, "model": model, "model_path": choice.path}
        suggestion = suggestion_html(post["post_id"], pred, choice.name, post.get("conflict"), post.get("text_label"),
                                     post.get("image_label"))
        return Prepared(post["post_id"], card, suggestion, pred, state)

    def _pick(self, name: str, strategy: str, model: str | None, exclude: tuple[int, ...] = ()) -> Prepared | None:
        from annotations import next_in_queue

        with self.ctx.sessions() as s:
            post = next_in_queue(s, name, strategy, data_dir=self.ctx.settings.data_dir, exclude=exclude)
        return None if post is None else self._prepare(post, model)

    def _prefetch(self, session: str | None, name: str, strategy: str, model: str | None, after: int) -> None:
        """Prepare the post that follows ``after`` for this session, in the background."""
        if session:
            future = self.ctx.background.submit("posts", self._pick, name, strategy, model, (after,))
            self.screens.set_next(session, (name, strategy, model, after), future)

    def _take_prefetched(self, session: str | None, name: str, strategy: str, model: str | None,
                         after: int) -> Prepared | None:
        """The post prepared to follow ``after``, when it is ready (or nearly) and still open for ``name``."""
        from annotations import is_open

        future = self.screens.take_next(session, (name, strategy, model, after))
        if future is None:
            return None
        try:
            prepared = future.result(timeout=WAIT_S)
        except Exception:  # logged; the caller prepares the post itself
            log.warning("prefetch for %s failed", name, exc_info=True)
            return None
        if prepared is None:
            return None
        with self.ctx.sessions() as s:
            return prepared if is_open(s, name, prepared.post_id) else None

    # ---- what every action returns -------------------------------------------------------------------

    def _show(self, who_name: str, strategy: str, model: str | None, prepared: Prepared | None, session: str | None,
              status: str = "", receipt: dict | None = None) -> tuple:
        """The outputs for a post (or an empty queue): id, card, suggestion, suggestion as data, explanation
        panel, progress, history, status line, receipt, state. Starts the post's explanation and the
        preparation of the next post; an explanation computed already comes with it."""
        from annotations import history, progress

        with self.ctx.sessions() as s:
            counts = progress(s, who_name)
            rows = history_html(history_rows(history(s, annotator=who_name, limit=HISTORY_LIMIT)))
        prog = progress_html(who_name, counts, strategy)
        if prepared is None:
            self.screens.show(session, None)
            empty = (f"Nothing left in the {strategy} queue for {who_name}. Try another queue, or import posts.")
            return (None, message_card(empty), suggestion_html(None, None, ""), None, explaining_card(None), prog,
                    rows, status, receipt, None)
        self.screens.show(session, prepared.post_id)
        explained = self.explanations.done_value(self._explain_key(prepared.state["model_path"], prepared.post_id))
        self._prefetch(session, who_name, strategy, model, prepared.post_id)
        return (prepared.post_id, prepared.card, prepared.suggestion, prepared.pred,
                explained or explaining_card(prepared.post_id), prog, rows, status, receipt, prepared.state)

    # ---- handlers ------------------------------------------------------------------------------------

    def next_post(self, name: str | None, strategy: str, model: str | None, request: gr.Request = None,
                  profile: gr.OAuthProfile | None = None):
        """The next post in the annotator's queue with the model's suggestion."""
        who, name = self._annotator(request, profile, name)
        model = self._model(who, model)
        with user_errors(who):
            return self._show(name, strategy, model, self._pick(name, strategy, model), _session(request))

    def open_tab(self, name: str | None, strategy: str, model: str | None, current: dict | None,
                 request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """On opening the tab: the queue's next post when none is on screen; a line saying what is missing
        (a name, a sign-in) instead of an error."""
        if current:
            return (gr.skip(),) * N_OUTPUTS
        try:
            return self.next_post(name, strategy, model, request, profile)
        except gr.Error as e:
            return (None, message_card(html.unescape(e.message)), suggestion_html(None, None, ""), None,
                    explaining_card(None), "", gr.skip(), "", None, None)

    def label(self, name: str | None, post_id: float | None, label: str, note: str | None, strategy: str,
              model: str | None, current: dict | None = None, request: gr.Request = None,
              profile: gr.OAuthProfile | None = None):
        """Save the annotator's label for the post on screen, then show the next one."""
        from annotations import save_correction
        from annotations.labels import check_label, check_note

        who, name = self._annotator(request, profile, name)
        with user_errors(who):
            pid, label, note = self._post_id(post_id), check_label(label), check_note(note)
            shown = current.get("prediction_id") if current and current.get("post_id") == pid else None
            with self.ctx.sessions.begin() as s:
                ann_id = save_correction(s, pid, name, label, note=note, shown_prediction_id=shown)
        receipt = {"annotation_id": ann_id, "post_id": pid, "annotator": name, "label": label}
        return self._after(request, name, strategy, self._model(who, model), pid,
                           f"✓ Saved #{ann_id}: post #{pid} → **{label}**", receipt)

    def skip(self, name: str | None, post_id: float | None, strategy: str, model: str | None,
             request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Skip the post on screen, then show the next one."""
        from annotations import skip

        who, name = self._annotator(request, profile, name)
        with user_errors(who):
            pid = self._post_id(post_id)
            with self.ctx.sessions.begin() as s:
                ann_id = skip(s, pid, name)
        receipt = {"annotation_id": ann_id, "post_id": pid, "annotator": name, "label": None}
        return self._after(request, name, strategy, self._model(who, model), pid, f"» Skipped post #{pid}", receipt)

    def undo(self, name: str | None, strategy: str, model: str | None, request: gr.Request = None,
             profile: gr.OAuthProfile | None = None):
        """Undo the caller's own last label or skip and show that post again (never anyone else's)."""
        from annotations import get_post, undo_last

        who, name = self._annotator(request, profile, name)
        model = self._model(who, model)
        with user_errors(who):
            with self.ctx.sessions.begin() as s:
                undone = undo_last(s, name)
                post = get_post(s, undone["post_id"], self.ctx.settings.data_dir) if undone else None
            if undone is None:
                out = list(self._show(name, strategy, model, self._pick(name, strategy, model), _session(request)))
                out[7] = "Nothing to undo."
                return tuple(out)
            what = f"label **{undone['label']}**" if undone["kind"] == "label" else "skip"
            return self._show(name, strategy, model, self._prepare(post, model), _session(request),
                              f"↩ Undid your {what} on post #{undone['post_id']}", undone)

    def _after(self, request, name: str, strategy: str, model: str | None, done: int, status: str,
               receipt: dict) -> tuple:
        """After a label or skip on ``done``: the prepared next post when it is still open, else a fresh pick."""
        session = _session(request)
        with user_errors():
            prepared = self._take_prefetched(session, name, strategy, model, done)
            if prepared is None:
                prepared = self._pick(name, strategy, model)
            return self._show(name, strategy, model, prepared, session, status, receipt)

    @staticmethod
    def _post_id(value) -> int:
        if value is None or value == "":
            raise user_error("No post on screen: press “Next post” first")
        return check_post_id(value)

    # ---- explanations --------------------------------------------------------------------------------

    @staticmethod
    def _explain_key(model_path: str, post_id: int) -> tuple:
        return (model_path, post_id)

    def _explanation_future(self, state: dict):
        """The (cached) future of a post's explanation card, started in the background when there is none."""
        key = self._explain_key(state["model_path"], state["post_id"])
        return self.explanations.get_or_submit(
            key, lambda: self.ctx.background.submit("explain", self._explain_card, state))

    def _explain_card(self, state: dict) -> str:
        """The explanation card of a post (run in the background); skipped for posts nobody looks at."""
        post_id = state["post_id"]
        if not state.get("image") or not (state.get("text") or "").strip():
            return no_explanation_card(post_id, "The model needs both an image and a text.")
        if not self.screens.wanted(post_id):
            raise Stale(post_id)
        e = self._explain_post(state.get("model"), state["image"], state["text"])
        overlay = to_data_url(e.overlay, OVERLAY_SIDE) if e.overlay is not None else None
        return explanation_card(post_id, e.to_dict(), overlay)

    def _explain_post(self, model: str | None, image: str, text: str):
        _, predictor = self.ctx.model(model)
        return predictor.explain(image, text, method=EXPLAIN_METHOD, faithfulness=False)

    def explain(self, current: dict | None, model: str | None, request: gr.Request = None,
                profile: gr.OAuthProfile | None = None):
        """The explanation card for the post on screen (heatmap, words, modality views, each with its caveats).
        Dropped (``gr.skip()``) when this session shows another post by the time it is ready."""
        if not current:
            return gr.skip()
        who = require_role(self.ctx.identify(request, profile), "annotator", "annotate")
        session, post_id = _session(request), current["post_id"]
        if self.screens.is_stale(session, post_id):
            return gr.skip()
        try:  # ``current`` is server-side state, made by the handler that showed the post
            card = self._explanation_future(current).result(timeout=WAIT_S)
        except Stale:
            return gr.skip()
        except ValueError as e:  # the model refused the post: say so in the panel
            log.info("no explanation for post #%s: %s", post_id, e)
            card = no_explanation_card(post_id, str(e) if who.is_admin else "The model could not explain it.")
        except TimeoutError:
            return gr.skip()
        if self.screens.is_stale(session, post_id):
            return gr.skip()
        self._explain_next(session, post_id)
        return card

    def _explain_next(self, session: str | None, post_id: int) -> None:
        """Explain the post prepared to follow ``post_id`` (now that the one on screen is explained), so that it
        comes with its explanation when the annotator gets to it."""
        future = self.screens.peek_next(session, after=post_id)
        if future is not None:
            future.add_done_callback(
                lambda f: None if f.exception() is not None or f.result() is None
                else self._explanation_future(f.result().state))

