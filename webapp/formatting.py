"""Plain values from mmsa_core and annotations -> what Gradio components display. No I/O, no Gradio."""
from __future__ import annotations

import math
import string
from typing import Any

WORD_VIEWS = ("attribution (integrated gradients)", "attention (fusion head)")


_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_MD_PUNCTUATION = frozenset(string.punctuation) - set(_HTML)


def md_escape(text: Any) -> str:
    """Any user-typed string, made literal inside Markdown: HTML characters become entities, every other ASCII
    punctuation mark is backslash-escaped (so ``[x](javascript:…)``, ``![](http://…)``, ``**``, ``#`` and bare
    URLs stay text), and line breaks become spaces (no new block can start). Use it for every name, note and
    text that goes into a ``gr.Markdown``; Markdown escaping is not HTML escaping, and this does both."""
    out = []
    for ch in str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " "):
        out.append(_HTML.get(ch) or ("\\" + ch if ch in _MD_PUNCTUATION else ch))
    return "".join(out)


def highlight_words(pairs: list[tuple[str, float]] | None, signed: bool) -> list[tuple[str, float | None]]:
    """``gr.HighlightedText`` value: words scaled into [-1, 1] (signed) or [0, 1], spaces unscored.

    Gradio colours a positive score red and a negative one purple, with the score as opacity.
    """
    if not pairs:
        return []
    scale = max((abs(s) for _, s in pairs if math.isfinite(s)), default=0.0) or 1.0
    out: list[tuple[str, float | None]] = []
    for i, (word, score) in enumerate(pairs):
        value = score / scale if math.isfinite(score) else 0.0
        out.append((word, round(value if signed else abs(value), 3)))
        if i < len(pairs) - 1:
            out.append((" ", None))
    return out


def word_view(explanation: dict | None, view: str) -> list[tuple[str, float | None]]:
    """The word highlights for the chosen view of a stored explanation summary."""
    if not explanation:
        return []
    if view == WORD_VIEWS[1]:
        return highlight_words(explanation.get("word_attention"), signed=False)
    return highlight_words(explanation.get("word_scores"), signed=True)


# Seconds per explanation (heatmap + integrated gradients, no faithfulness pass) with the shipped model on the
# 2-core CPU with nothing else running: the p50 of bench/bench_cam_methods.py (docs/bench_cam_methods.md).
# The selector says this before anything runs.
METHOD_SECONDS = {"GradCAM": 0.2, "GradCAM++": 0.2, "HiResCAM": 0.2, "XGradCAM": 0.2, "LayerCAM": 0.2,
                  "EigenCAM": 0.3, "EigenGradCAM": 0.4, "ScoreCAM": 51.0}


def method_label(method: str, slow: bool) -> str:
    """"GradCAM (~0.2 s on CPU)", "ScoreCAM (slow, ~51.0 s on CPU, admins only)"."""
    secs = METHOD_SECONDS.get(method)
    cost = "" if secs is None else (f"~{secs / 60:.1f}".rstrip("0").rstrip(".") + " min" if secs >= 60
                                    else f"~{secs:.1f} s") + " on CPU"
    if slow:
        return f"{method} (slow, {cost}, admins only)" if cost else f"{method} (slow, admins only)"
    return f"{method} ({cost})" if cost else method


def method_choices() -> list[tuple[str, str]]:
    """The heatmap methods as (label with its cost, name) pairs, the default first."""
    from mmsa_core.explain import list_cam_methods
    from mmsa_core.explain.cam import SLOW_CAM_METHODS

    return [(method_label(m, m in SLOW_CAM_METHODS), m) for m in list_cam_methods()]


def _caveat_lines(lines: list[str]) -> str:
    return "".join(f"\n\n_{md_escape(line)}_" for line in lines if line)


def word_legend(explanation: dict | None, view: str) -> str:
    """How to read the word colours, with the caveats that qualify them (unread trailing words ...)."""
    from .cards import split_notes

    if not explanation:
        return ""
    notes = split_notes(explanation.get("notes", ()))["words"]
    if view == WORD_VIEWS[1]:
        if explanation.get("word_attention") is None:
            return "_This model's fusion head has no attention over words: switch to attribution._"
        return "Red: where the fusion head looked (attention weight, unsigned)." + _caveat_lines(notes)
    target = explanation.get("target", "the label")
    return (f"Red pushes towards **{target}**, purple pushes away from it (integrated gradients)."
            + _caveat_lines([n for n in notes if "attention" not in n.lower()]))


def heatmap_markdown(explanation: dict | None) -> str:
    """The caveats of the heatmap, for right under it: the centre crop the model saw, flat or class-agnostic maps."""
    from .cards import crop_caption, split_notes

    if not explanation:
        return ""
    lines = [crop_caption(explanation)] + split_notes(explanation.get("notes", ()))["heatmap"]
    return " ".join(f"_{md_escape(line)}_" for line in lines if line)


def modality_markdown(modality: dict, target: str, notes: list[str] | tuple[str, ...] = ()) -> str:
    """Who carries the decision, and whether text and image disagree, with the caveat on these views."""
    from .cards import split_notes

    shares = modality["shares"]
    text = (f"Text-only view says **{modality['text_label']}**, image-only view says **{modality['image_label']}**. "
            f"Support for **{target}**: text {100 * shares['text']:.0f}% · image {100 * shares['image']:.0f}%.")
    if modality["conflict"]:
        text = ("⚠ **Conflict**: the text and the image point to opposite sentiments. " + text)
    return text + _caveat_lines(split_notes(notes)["views"])


def _fmt(value: Any) -> str:
    return f"{value:+.3f}" if isinstance(value, float) and math.isfinite(value) else "—"


def image_faithfulness_markdown(faith: dict, computed: bool = True) -> str:
    """ROAD and confidence-change scores of the heatmap, with how to read them."""
    if "image_road" not in faith:
        return ("_Heatmap faithfulness: none for this model (no heatmap)._" if computed
                else "_Heatmap faithfulness: not computed yet._")
    share = 100 * faith.get("image_removed_fraction", 0.2)
    return (f"**Heatmap faithfulness** · ROAD {_fmt(faith['image_road'])} (higher is better: removing the "
            f"top {share:.0f}% of pixels should hurt more than removing the bottom {share:.0f}%) · "
            f"confidence change when the image is masked by the heatmap {_fmt(faith['image_confidence_change'])}")


def word_faithfulness_markdown(faith: dict, computed: bool = True) -> str:
    """ERASER comprehensiveness and sufficiency of the top words."""
    if "words_comprehensiveness" not in faith:
        return ("_Word faithfulness: none for this model (no word scores)._" if computed
                else "_Word faithfulness: not computed yet._")
    k = int(faith.get("words_k", 0))
    return (f"**Word faithfulness** (top {k} words) · comprehensiveness {_fmt(faith['words_comprehensiveness'])} "
            f"(higher is better: the probability drops without them) · sufficiency "
            f"{_fmt(faith['words_sufficiency'])} (lower is better: they alone keep the probability)")


def timing_markdown(model: str, predict_ms: float | None = None, explain_ms: float | None = None,
                    faithfulness_ms: float | None = None) -> str:
    parts = [f"model {md_escape(model)}"]
    for name, ms in (("prediction", predict_ms), ("explanation", explain_ms), ("faithfulness pass", faithfulness_ms)):
        if ms is not None:
            parts.append(f"{name} {ms:.0f} ms")
    return " · ".join(parts)


def notes_markdown(notes: list[str] | tuple[str, ...]) -> str:
    """The notes that qualify no single part of the explanation (the rest stand next to their part)."""
    from .cards import split_notes

    other = split_notes(notes)["other"]
    return "\n".join(f"- {md_escape(n)}" for n in other) if other else ""


def history_rows(rows: list[dict]) -> list[list[Any]]:
    """Annotation history rows (newest first) for a ``gr.Dataframe``."""
    return [[r["created_at"][:19].replace("T", " "), r["post_id"], r["kind"], r["label"] or "", r["note"] or "",
             "yes" if r["current"] else ""] for r in rows]


HISTORY_HEADERS = ["when (UTC)", "post", "action", "label", "note", "in force"]


def progress_markdown(name: str, counts: dict, strategy: str) -> str:
    """``annotations.progress`` -> one line: done, skipped and remaining (skips are not done)."""
    total = counts["total"]
    pct = 100 * (counts["done"] + counts["skipped"]) / total if total else 100.0
    return (f"**{md_escape(name)}**: {counts['done']} done · {counts['skipped']} skipped · {counts['remaining']} "
            f"remaining ({pct:.0f}% of {total} posts seen) · queue {md_escape(strategy)}")
