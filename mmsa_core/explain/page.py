"""A self-contained HTML page for one explanation: overlay, coloured words, modality views, faithfulness."""
from __future__ import annotations

import html

from .result import Explanation

_POS, _NEG, _ATT = (22, 163, 74), (220, 38, 38), (37, 99, 235)  # green: towards the class, red: away


def _span(word: str, score: float, scale: float, rgb: tuple[int, int, int]) -> str:
    a = 0.0 if scale <= 0 else min(abs(score) / scale, 1.0)
    return (f'<span class="w" style="background: rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.85 * a:.3f})" '
            f'title="{score:+.4f}">{html.escape(word)}</span>')


def highlighted_words(scores: list[tuple[str, float]], signed: bool = True) -> str:
    """Words as coloured spans: green pushes towards the class, red away (signed); blue = attention."""
    scale = max((abs(s) for _, s in scores), default=0.0)
    return " ".join(_span(w, s, scale, (_POS if s >= 0 else _NEG) if signed else _ATT) for w, s in scores)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _views(e: Explanation) -> str:
    m = e.modality
    head = "<tr><th>view</th>" + "".join(f"<th>{html.escape(lab)}</th>" for lab in e.probabilities) + "</tr>"
    rows = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{p:.3f}</td>" for p in probs.values()) + "</tr>"
                   for name, probs in (("fused", m.fused), ("text only", m.text), ("image only", m.image)))
    shares = (f"<p>Share of the decision for <b>{html.escape(e.target)}</b>: text {m.shares['text']:.0%}, "
              f"image {m.shares['image']:.0%}" + (" &mdash; <b>text and image disagree</b>" if m.conflict else "")
              + "</p>")
    return f"<table>{head}{rows}</table>{shares}"


def to_html(e: Explanation, overlay_file: str | None = "overlay.png") -> str:
    """The page; ``overlay_file`` is the overlay's path relative to the page (None: no image)."""
    probs = ", ".join(f"{lab} {p:.3f}" for lab, p in e.probabilities.items())
    parts = [f"<h1>{html.escape(e.label)} <small>({probs})</small></h1>",
             f"<p>Explained class: <b>{html.escape(e.target)}</b> &middot; model {html.escape(e.model)}"
             f" &middot; {e.elapsed_ms:.0f} ms</p>"]
    if overlay_file and e.overlay is not None:
        parts.append(f'<h2>Image: {html.escape(e.method or "")}</h2><img src="{html.escape(overlay_file)}" '
                     'alt="heatmap overlay">')
    if e.word_scores is not None:
        delta = f" (convergence delta {e.ig_delta:.2e})" if e.ig_delta is not None else ""
        parts.append(f"<h2>Words: integrated gradients{delta}</h2><p>{highlighted_words(e.word_scores)}</p>"
                     "<p class='legend'>green pushes towards the class, red away from it</p>")
    if e.word_attention is not None:
        parts.append(f"<h2>Words: the model's attention</h2><p>{highlighted_words(e.word_attention, False)}</p>")
    parts.append(f"<h2>Modalities</h2>{_views(e)}")
    if e.faithfulness:
        parts.append("<h2>Faithfulness</h2>" + _table([(k, f"{v:+.4f}") for k, v in e.faithfulness.items()]))
    if e.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in e.notes) + "</ul>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}img{max-width:100%}"
             ".w{padding:0 .15em;border-radius:.2em;line-height:1.9}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.legend{color:#666}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Explanation: {html.escape(e.label)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
