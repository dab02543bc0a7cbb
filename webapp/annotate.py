"""Annotate tab: the next post from the queue with the model's suggestion, label / skip / undo, progress.

Every action is one short transaction; the post on screen and the prediction shown with it travel in a
session state (and the post id in a visible field, so API clients can name it).
"""
from __future__ import annotations

import logging

import gradio as gr

from .context import AppContext
from .formatting import history_rows, md_escape, progress_markdown, word_view
from .identity import Identity, require_name, require_role
from .inputs import check_post_id, user_error, user_errors

log = logging.getLogger(__name__)

HISTORY_LIMIT = 10
N_OUTPUTS = 10  # what every queue action returns, see ``_show``


class AnnotateHandlers:
    """Every action is the signed-in annotator's (open mode: the typed name's); ``name`` from a client is
    ignored otherwise, so nobody labels, skips or undoes under someone else's name."""

    def __init__(self, ctx: AppContext, gpu=lambda fn: fn):
        self.ctx = ctx
        self.explain = gpu(self.explain)

    def _annotator(self, request, profile, typed: str | None) -> tuple[Identity, str]:
        who = require_role(self.ctx.identify(request, profile, typed), "annotator", "annotate")
        return who, require_name(who, "annotate")

    def _suggest(self, post: dict, model: str | None) -> tuple[dict | None, str]:
        """The model's prediction for a queued post, reused from the database when this model already made it."""
        from annotations import record_prediction

        choice, predictor = self.ctx.model(model)
        pred = post.get("prediction")
        if pred and pred["model_name"] == choice.name:
            return pred, choice.name
        if not post.get("image_path") or not (post.get("text") or "").strip():
            return None, choice.name  # the model needs both an image and a text
        p = predictor.predict(post["image_path"], post["text"])
        with self.ctx.sessions.begin() as s:
            pred_id = record_prediction(s, post["post_id"], p.label, p.probabilities, choice.name)
        return {"prediction_id": pred_id, "label": p.label, "probs": p.probabilities}, choice.name

    def _show(self, name: str, strategy: str, model: str | None, post: dict | None, status: str = "",
              receipt: dict | None = None) -> tuple:
        """The outputs for a post (or an empty queue): id, image, text, suggestion, its caption, progress,
        history, status line, receipt, state."""
        from annotations import history, progress

        with self.ctx.sessions() as s:
            counts = progress(s, name)
            rows = history_rows(history(s, annotator=name, limit=HISTORY_LIMIT))
        prog = progress_markdown(name, counts, strategy)
        if post is None:
            empty = (f"Nothing left in the {md_escape(strategy)} queue for {md_escape(name)}. Try another strategy, "
                     "or import posts.")
            return None, None, empty, None, "", prog, rows, status, receipt, None
        pred, model_name = self._suggest(post, model)
        caption = (f"Model {md_escape(model_name)} suggests **{pred['label']}**" if pred
                   else "_No suggestion: the model needs both an image and a text._")
        state = {"post_id": post["post_id"], "prediction_id": pred["prediction_id"] if pred else None,
                 "image": post.get("image_path"), "text": post.get("text") or ""}
        return (post["post_id"], post.get("image_path"), post.get("text") or "", pred["probs"] if pred else None,
                caption, prog, rows, status, receipt, state)

    def next_post(self, name: str | None, strategy: str, model: str | None, request: gr.Request = None,
                  profile: gr.OAuthProfile | None = None):
        """The next post in the annotator's queue with the model's suggestion."""
        from annotations import next_in_queue

        who, name = self._annotator(request, profile, name)
        with user_errors(who):
            with self.ctx.sessions() as s:
                post = next_in_queue(s, name, strategy, data_dir=self.ctx.settings.data_dir)
            return self._show(name, strategy, self._model(who, model), post)

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
        return self._after(name, strategy, self._model(who, model), f"✓ Saved #{ann_id}: post #{pid} → **{label}**",
                           receipt)

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
        return self._after(name, strategy, self._model(who, model), f"» Skipped post #{pid}", receipt)

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
                out = list(self.next_post(name, strategy, model, request, profile))
                out[7] = "Nothing to undo."
                return tuple(out)
            what = f"label **{undone['label']}**" if undone["kind"] == "label" else "skip"
            return self._show(name, strategy, model, post, f"↩ Undid your {what} on post #{undone['post_id']}",
                              undone)

    @staticmethod
    def _model(who: Identity, model: str | None) -> str | None:
        return model if who.is_admin else None  # everyone else gets the model served to everyone

    def _after(self, name: str, strategy: str, model: str | None, status: str, receipt: dict) -> tuple:
        from annotations import next_in_queue

        with user_errors():
            with self.ctx.sessions() as s:
                post = next_in_queue(s, name, strategy, data_dir=self.ctx.settings.data_dir)
            return self._show(name, strategy, model, post, status, receipt)

    @staticmethod
    def _post_id(value) -> int:
        if value is None or value == "":
            raise user_error("No post on screen: press “Next post” first")
        return check_post_id(value)

    def explain(self, current: dict | None, model: str | None, request: gr.Request = None,
                profile: gr.OAuthProfile | None = None):
        """Heatmap overlay and word attributions for the post on screen (no faithfulness: annotators need speed)."""
        if not current or not current.get("image") or not current.get("text", "").strip():
            return None, []
        who = require_role(self.ctx.identify(request, profile), "annotator", "annotate")
        with user_errors(who):
            _, predictor = self.ctx.model(self._model(who, model))
            e = predictor.explain(current["image"], current["text"], method="GradCAM", faithfulness=False)
        return e.overlay, word_view(e.to_dict(), "attribution")
