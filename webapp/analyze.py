"""Analyze tab: predict a post, explain it, re-blend the heatmap, switch word views, save a correction.

Handlers take and return plain values (paths, strings, dicts); the last output of ``predict`` and
``explain`` is a session state the later handlers read, so nothing is recomputed needlessly.
"""
from __future__ import annotations

import logging

import gradio as gr

from .context import AppContext
from .formatting import (heatmap_markdown, image_faithfulness_markdown, md_escape, modality_markdown, notes_markdown,
                         timing_markdown, word_faithfulness_markdown, word_legend, word_view)
from .identity import Identity, require_name, require_role
from .inputs import check_text_length, require_image, user_errors

log = logging.getLogger(__name__)


def conflict_score(modality: dict) -> float:
    """Chance that the text-only and the image-only views, read as independent guesses, point to opposite
    sentiments: p_text(neg) p_image(pos) + p_text(pos) p_image(neg), in [0, 1]."""
    t, i = modality["text"], modality["image"]
    score = t.get("negative", 0) * i.get("positive", 0) + t.get("positive", 0) * i.get("negative", 0)
    return min(max(float(score), 0.0), 1.0)


def _same_post(state: dict | None, image: str, text: str, model_path: str) -> bool:
    return bool(state) and (state.get("image"), state.get("text"), state.get("model")) == (image, text, model_path)


def slow_method(method: str | None) -> bool:
    """Whether a CAM method costs a forward pass per channel (admins only): ScoreCAM, ablation-style ones."""
    from mmsa_core.explain.cam import SLOW_CAM_METHODS, get_cam_method

    try:
        return get_cam_method(method or "GradCAM")[0] in SLOW_CAM_METHODS
    except ValueError:
        return False  # an unknown name fails later, with the menu


class AnalyzeHandlers:
    """Bound methods are the Gradio handlers; ``gpu`` wraps the model-heavy ones (``spaces.GPU`` on a Space)."""

    def __init__(self, ctx: AppContext, gpu=lambda fn: fn):
        self.ctx = ctx
        self.predict = gpu(self.predict)
        self.explain = gpu(self.explain)
        self.faithfulness = gpu(self.faithfulness)

    def _caller(self, request, profile, bucket: str, action: str) -> Identity:
        """Who calls, after their rate limit for ``bucket`` (a refused call costs nothing)."""
        who = self.ctx.identify(request, profile)
        self.ctx.check_rate(bucket, who, request, action)
        return who

    def predict(self, image: str | None, text: str | None, model: str | None, request: gr.Request = None,
                profile: gr.OAuthProfile | None = None):
        """The label probabilities of a post -> (probabilities, timing, state). Only admins pick the model."""
        who = self._caller(request, profile, "predict", "prediction")
        with user_errors(who):
            image, text = require_image(image), check_text_length(text)
            choice, predictor = self.ctx.model(model if who.is_admin else None)
            p = predictor.predict(image, text)
        state = {"image": image, "text": text, "model": choice.path, "name": choice.name, "label": p.label,
                 "probabilities": p.probabilities, "predict_ms": p.elapsed_ms}
        return p.probabilities, timing_markdown(p.model, p.elapsed_ms), state

    def explain(self, image: str | None, text: str | None, model: str | None, method: str, alpha: float,
                view: str, faithfulness: bool = False, predicted: dict | None = None, request: gr.Request = None,
                profile: gr.OAuthProfile | None = None):
        """Heatmap overlay, word highlights and their legend, the three modality views with the conflict flag, the
        heatmap's caveats, faithfulness (when asked: it costs several times the rest on a CPU), timing, the other
        notes, summary. Slow CAM methods are for admins."""
        who = self.ctx.identify(request, profile)
        if slow_method(method) and self.ctx.settings.limits_enabled:
            require_role(who, "admin", f"use {method} (slow: one model pass per image channel); pick GradCAM")
        self.ctx.check_rate("explain", who, request, "explanation")
        with user_errors(who):
            image, text = require_image(image), check_text_length(text)
            choice, predictor = self.ctx.model(model if who.is_admin else None)
            e = predictor.explain(image, text, method=method or "GradCAM", alpha=float(alpha),
                                  faithfulness=bool(faithfulness))
        summary = e.to_dict()
        m = summary["modality"]
        predict_ms = predicted["predict_ms"] if _same_post(predicted, image, text, choice.path) else None
        state = {"image": image, "text": text, "model": choice.path, "method": e.method, "heatmap": e.heatmap,
                 "crop_box": e.crop_box, "summary": summary, "predict_ms": predict_ms, "explain_ms": e.elapsed_ms}
        return (e.overlay, word_view(summary, view), word_legend(summary, view), m["text"], m["image"], m["fused"],
                modality_markdown(m, e.target, e.notes), heatmap_markdown(summary),
                image_faithfulness_markdown(e.faithfulness, bool(faithfulness)),
                word_faithfulness_markdown(e.faithfulness, bool(faithfulness)),
                timing_markdown(e.model, predict_ms, e.elapsed_ms),
                notes_markdown(e.notes), summary, state)

    def faithfulness(self, enabled: bool, explained: dict | None, request: gr.Request = None,
                     profile: gr.OAuthProfile | None = None):
        """Second pass for the explanation on screen: its faithfulness scores -> (heatmap scores, word scores,
        summary, timing). The heatmap and the words are shown first; these follow."""
        if not explained:
            return "", "", None, ""
        summary = explained["summary"]
        if not enabled:
            off = "_Faithfulness scores are off: tick the box to compute them._"
            timing = timing_markdown(summary["model"], explained["predict_ms"], explained["explain_ms"])
            return off, off, summary, timing
        who = self._caller(request, profile, "explain", "explanation")
        with user_errors(who):
            _, predictor = self.ctx.model(explained["model"])
            e = predictor.explain(explained["image"], explained["text"], method=explained["method"] or "GradCAM",
                                  faithfulness=True)
        summary = {**summary, "faithfulness": e.faithfulness}
        return (image_faithfulness_markdown(e.faithfulness), word_faithfulness_markdown(e.faithfulness), summary,
                timing_markdown(e.model, explained["predict_ms"], explained["explain_ms"], e.elapsed_ms))

    def model_menu(self, current: str | None = None, request: gr.Request = None,
                   profile: gr.OAuthProfile | None = None):
        """The selector refreshed from disk and the database; keeps the current pick when it is still there.
        Everyone but admins sees (and gets) the model served to everyone, without its path."""
        who = self.ctx.identify(request, profile)
        with user_errors(who):
            choices = self.ctx.model_choices()
        if not who.is_admin:
            label = choices[0].label if choices else "no model found"
            return gr.Dropdown(choices=[(label, "")], value="", interactive=False)
        paths = [c.path for c in choices]
        value = current if current in paths else (paths[0] if paths else None)
        return gr.Dropdown(choices=[(c.label, c.path) for c in choices], value=value, interactive=True)

    @staticmethod
    def reblend(explained: dict | None, alpha: float):
        """The overlay at another opacity, from the stored heatmap (no model call)."""
        if not explained or explained.get("heatmap") is None:
            return None
        from mmsa_core.explain import overlay

        with user_errors():
            return overlay(explained["image"], explained["heatmap"], float(alpha), box=explained["crop_box"])

    @staticmethod
    def words(explained: dict | None, view: str):
        """Word highlights and legend for attribution or attention."""
        summary = (explained or {}).get("summary")
        return word_view(summary, view), word_legend(summary, view)

    def correct(self, image: str | None, text: str | None, label: str, note: str | None, annotator: str | None,
                model: str | None, predicted: dict | None = None, explained: dict | None = None,
                request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Save the post, what the model said and the user's label -> (confirmation, receipt).

        The label is the signed-in person's; ``annotator`` (a typed name) counts only in open mode."""
        from annotations import add_post, record_prediction, save_correction
        from annotations.labels import check_label, check_note

        who = require_role(self.ctx.identify(request, profile, annotator), "annotator", "save labels")
        with user_errors(who):
            name = require_name(who)
            image, text = require_image(image), check_text_length(text)
            label, note = check_label(label), check_note(note)  # every check before anything is written
            self.ctx.check_rate("correct", who, request, "saving corrections")
            choice, predictor = self.ctx.model(model if who.is_admin else None)
            if _same_post(predicted, image, text, choice.path):
                model_label, probs = predicted["label"], predicted["probabilities"]
            else:  # an API call, or the inputs changed since the last prediction
                p = predictor.predict(image, text)
                model_label, probs = p.label, p.probabilities
            conflict = (conflict_score(explained["summary"]["modality"])
                        if _same_post(explained, image, text, choice.path) else None)
            with self.ctx.sessions.begin() as s:  # a failure removes the image file written here, too
                post_id = add_post(s, text, image, data_dir=self.ctx.settings.data_dir)
                pred_id = record_prediction(s, post_id, model_label, probs, choice.name, conflict)
                ann_id = save_correction(s, post_id, name, label, note=note, shown_prediction_id=pred_id)
        receipt = {"post_id": post_id, "prediction_id": pred_id, "annotation_id": ann_id, "label": label,
                   "annotator": name, "model": choice.name, "model_label": model_label}
        agree = "agrees with" if label == model_label else "corrects"
        md = (f"✓ Saved correction #{ann_id}: post #{post_id} is **{label}** ({agree} the model's "
              f"**{model_label}**, {100 * probs[model_label]:.0f}%) · by {md_escape(name)}")
        return md + (f" · note: “{md_escape(note)}”" if note else ""), receipt
