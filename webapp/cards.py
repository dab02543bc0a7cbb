"""HTML cards for the Annotate and Review tabs: a post (image, text, id), the model's suggestion, its
explanation, a progress bar. Each card is one ``gr.HTML`` value, so image, text and id change together.

Every string that comes from a user or from the database goes through ``esc`` (``html.escape``); images are
``data:`` URLs of display-sized JPEGs made here, so no file path reaches the page. Each card carries the post
it belongs to in ``data-post``; ``webapp.hotkeys`` hides an explanation whose post is not the one on screen.
"""
from __future__ import annotations

import base64
import functools
import html
import io
import math
from typing import Any

PREVIEW_CHARS = 280  # longer texts show this much, then "show all"
WORDS_SHOWN = 80  # word highlights beyond this sit behind "show all"
DISPLAY_SIDE = 560  # the post image's longest side on the page, in pixels (42vh of 800 is 336)
OVERLAY_SIDE = 480


def esc(value: Any) -> str:
    """Text for HTML: ``& < > " '`` become entities (attribute values included)."""
    return html.escape(str(value), quote=True)


# ---- images --------------------------------------------------------------------------------------------

def to_data_url(image, max_side: int) -> str:
    """A PIL image as a ``data:image/jpeg`` URL, shrunk to ``max_side`` and flattened onto white."""
    from PIL import Image

    im = image
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        flat = Image.new("RGB", im.size, "white")
        flat.paste(im, mask=im.getchannel("A"))
        im = flat
    elif im.mode != "RGB":
        im = im.convert("RGB")
    if max(im.size) > max_side:
        im = im.copy()
        im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=82)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=256)
def post_image_url(path: str) -> str:
    """A post image as a display-sized data URL, kept for the 256 files used last (content-addressed names:
    a path never changes)."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.seek(0)  # animated GIF: the first frame, as the model sees it
        return to_data_url(ImageOps.exif_transpose(im) or im, DISPLAY_SIDE)


# ---- post, suggestion, progress ------------------------------------------------------------------------

def text_html(text: str) -> str:
    """The post's text; a long one shows its start and a "show all" that opens the rest in a scroll box."""
    if len(text) <= PREVIEW_CHARS:
        return f'<div class="mmsa-text">{esc(text)}</div>'
    return (f'<details class="mmsa-text mmsa-long"><summary><span class="mmsa-preview">{esc(text[:PREVIEW_CHARS])}'
            f'…</span> <span class="mmsa-more">show all ({len(text):,} characters)</span>'
            f'<span class="mmsa-less">show less</span></summary><div class="mmsa-full">{esc(text)}</div></details>')


def post_card(post_id: int, text: str, image_url: str | None, extra: str = "") -> str:
    """A post: its id, image and text (``extra``: trusted HTML made here, such as a source line)."""
    img = (f'<img class="mmsa-post-img" src="{image_url}" alt="the image of post #{post_id}">' if image_url
           else '<div class="mmsa-noimg">(no image)</div>')
    return (f'<div class="mmsa-card" data-post="{post_id}"><div class="mmsa-card-head">Post #{post_id}{extra}'
            f'</div>{img}{text_html(text)}</div>')


def message_card(message: str) -> str:
    """No post on screen: a line saying why (escaped)."""
    return f'<div class="mmsa-card mmsa-empty" data-post="">{esc(message)}</div>'


def _bars(probs: dict[str, float]) -> str:
    rows = []
    for label, p in sorted(probs.items(), key=lambda kv: -kv[1]):
        pct = 100 * float(p)
        rows.append(f'<div class="mmsa-bar"><span class="mmsa-bar-label">{esc(label)}</span>'
                    f'<span class="mmsa-bar-track"><span class="mmsa-bar-fill mmsa-{esc(label)}" '
                    f'style="width:{pct:.0f}%"></span></span>'
                    f'<span class="mmsa-bar-pct">{pct:.0f}%</span></div>')
    return "".join(rows)


def conflict_flag(conflict: float | None, text_label: str | None = None, image_label: str | None = None) -> str:
    """The post's conflict flag, saying whose it is: the source's own per-modality labels (MVSA's text and
    image labels) when they point opposite ways, else the model's text-only and image-only views."""
    if {text_label, image_label} == {"positive", "negative"}:
        return (f'<div class="mmsa-conflict">⚠ The source labels the text {esc(text_label)} and the image '
                f'{esc(image_label)} (its per-modality labels, not the model)</div>')
    if conflict is not None and conflict >= 0.5:
        return (f'<div class="mmsa-conflict">⚠ The model\'s text-only and image-only views point opposite ways '
                f'(conflict {conflict:.2f})</div>')
    return ""


def suggestion_html(post_id: int | None, pred: dict | None, model_name: str, conflict: float | None = None,
                    text_label: str | None = None, image_label: str | None = None) -> str:
    """The model's suggestion for a post with a bar per label, and the post's conflict flag (``conflict_flag``)."""
    if post_id is None:
        return '<div class="mmsa-suggestion" data-post=""></div>'
    if not pred:
        return (f'<div class="mmsa-suggestion" data-post="{post_id}"><span class="mmsa-muted">No suggestion: the '
                'model needs both an image and a text.</span></div>')
    flag = conflict_flag(conflict, text_label, image_label)
    return (f'<div class="mmsa-suggestion" data-post="{post_id}"><div class="mmsa-suggests">Model '
            f'<code>{esc(model_name)}</code> suggests <strong>{esc(pred["label"])}</strong></div>{flag}'
            f'{_bars(pred["probs"])}</div>')


def progress_html(name: str, counts: dict, strategy: str) -> str:
    """``annotations.progress`` as a bar: done, skipped and remaining side by side, with the counts."""
    total = counts["total"] or 0
    parts = []
    for key in ("done", "skipped", "remaining"):
        width = 100 * counts[key] / total if total else 0
        parts.append(f'<span class="mmsa-prog-{key}" style="width:{width:.2f}%"></span>')
    seen = 100 * (counts["done"] + counts["skipped"]) / total if total else 100.0
    return (f'<div class="mmsa-progress" role="progressbar" aria-valuenow="{seen:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div class="mmsa-prog-bar">{"".join(parts)}</div><div class="mmsa-prog-text">'
            f'<strong>{esc(name)}</strong>: {counts["done"]} done · {counts["skipped"]} skipped · '
            f'{counts["remaining"]} remaining of {total} ({seen:.0f}% seen) · queue <code>{esc(strategy)}</code>'
            '</div></div>')


# ---- explanation ---------------------------------------------------------------------------------------

def split_notes(notes: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """The explainer's notes by what they qualify: "heatmap", "words", "views" (text-only / image-only)
    or "other", so each caveat can stand next to its part of the explanation."""
    out: dict[str, list[str]] = {"heatmap": [], "words": [], "views": [], "other": []}
    for note in notes or ():
        low = note.lower()
        if "text-only and image-only" in low:
            out["views"].append(note)
        elif "heatmap" in low or "class-agnostic" in low:
            out["heatmap"].append(note)
        elif "word" in low or "max_text_len" in low:
            out["words"].append(note)
        else:
            out["other"].append(note)
    return out


def crop_caption(summary: dict) -> str:
    """What part of the image the heatmap covers: the model sees a centre crop, the rest is dimmed."""
    box, shape = summary.get("crop_box"), summary.get("heatmap_shape")
    if not box or not shape:
        return ""
    height, width = shape
    left, top, right, bottom = box
    if left <= 0 and top <= 0 and right >= width and bottom >= height:
        return ""
    seen = 100 * (right - left) * (bottom - top) / max(width * height, 1)
    return (f"The model sees only the centre crop ({seen:.0f}% of the image); the dimmed border was cut away "
            "before it looked, so the heatmap says nothing about it.")


def word_spans(pairs: list | None, limit: int = WORDS_SHOWN) -> str:
    """Words coloured by their score: red towards the explained label, purple away from it."""
    if not pairs:
        return ""
    scale = max((abs(s) for _, s in pairs if math.isfinite(s)), default=0.0) or 1.0
    spans = []
    for word, score in pairs:
        v = score / scale if math.isfinite(score) else 0.0
        colour = f"rgba(220,38,38,{abs(v):.2f})" if v >= 0 else f"rgba(124,58,237,{abs(v):.2f})"
        spans.append(f'<span class="mmsa-word" style="background:{colour}" title="{score:+.3f}">{esc(word)}</span>')
    shown = " ".join(spans[:limit])
    if len(spans) > limit:
        shown += (f' <details class="mmsa-inline"><summary>show all {len(spans):,} words</summary>'
                  f'{" ".join(spans[limit:])}</details>')
    return shown


def _caveats(lines: list[str], cls: str = "mmsa-caveat") -> str:
    return "".join(f'<div class="{cls}">{esc(line)}</div>' for line in lines if line)


def modality_html(modality: dict, target: str, notes: list[str]) -> str:
    """Text-only / image-only views and who carries the decision, with their caveat."""
    shares = modality["shares"]
    line = (f"Text-only view says <strong>{esc(modality['text_label'])}</strong>, image-only view says "
            f"<strong>{esc(modality['image_label'])}</strong>; support for {esc(target)}: text "
            f"{100 * shares['text']:.0f}% · image {100 * shares['image']:.0f}%.")
    return f'<div class="mmsa-views">{line}</div>{_caveats(notes)}'


CONFLICT_FLAG = '<div class="mmsa-conflict">⚠ Conflict: the text and the image point to opposite sentiments.</div>'


def explanation_card(post_id: int, summary: dict, overlay_url: str | None) -> str:
    """Heatmap, word highlights and modality views for one post, each with its caveats, naming the post."""
    notes = split_notes(summary.get("notes", ()))
    target = summary.get("target", "the label")
    secs = summary.get("elapsed_ms", 0) / 1000
    head = (f'<div class="mmsa-card-head">Heatmap and words for post #{post_id} · {esc(summary.get("method") or "")} '
            f'· towards <strong>{esc(target)}</strong> · {secs:.1f} s</div>')
    img = ""
    if overlay_url:
        img = (f'<figure class="mmsa-overlay"><img src="{overlay_url}" alt="heatmap of post #{post_id}">'
               f'<figcaption>{_caveats([crop_caption(summary)] + notes["heatmap"])}</figcaption></figure>')
    else:
        img = f'<div class="mmsa-overlay">{_caveats(notes["heatmap"] or ["No heatmap for this model."])}</div>'
    truncated = summary.get("truncated_words") or 0
    word_notes = [f"The model read only the first words: the last {truncated} (score 0) were never seen."
                  ] if truncated else []
    word_notes += [n for n in notes["words"] if "max_text_len" not in n and "attention" not in n.lower()]
    words = (f'<div class="mmsa-words"><div class="mmsa-legend">Red pushes towards {esc(target)}, purple away '
             f'from it (integrated gradients).</div><div class="mmsa-wordlist">'
             f'{word_spans(summary.get("word_scores"))}</div>{_caveats(word_notes)}</div>')
    modality = summary.get("modality")
    views = modality_html(modality, target, notes["views"]) if modality else ""
    flag = CONFLICT_FLAG if modality and modality.get("conflict") else ""
    return (f'<div class="mmsa-card mmsa-explanation" data-post="{post_id}" data-state="explained">{head}{flag}'
            f'<div class="mmsa-expl-body">{img}{words}</div>{views}{_caveats(notes["other"])}</div>')


def explaining_card(post_id: int | None) -> str:
    """What the panel shows while the post's explanation is computed (in the response that shows the post)."""
    if post_id is None:
        return '<div class="mmsa-card mmsa-explanation" data-post="" data-state="none"></div>'
    return (f'<div class="mmsa-card mmsa-explanation" data-post="{post_id}" data-state="pending">'
            f'<div class="mmsa-card-head">Explaining post #{post_id}…</div></div>')


def no_explanation_card(post_id: int, reason: str) -> str:
    return (f'<div class="mmsa-card mmsa-explanation" data-post="{post_id}" data-state="none">'
            f'<div class="mmsa-card-head">No explanation for post #{post_id}</div>{_caveats([reason])}</div>')


def history_html(rows: list[list]) -> str:
    """The annotator's recent actions (``formatting.history_rows``) as a small table: cheaper for the page to
    draw than a data frame on every label, so the next post is on screen sooner."""
    from .formatting import HISTORY_HEADERS

    head = "".join(f"<th>{esc(h)}</th>" for h in HISTORY_HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in rows)
    body = body or f'<tr><td colspan="{len(HISTORY_HEADERS)}"><span class="mmsa-muted">nothing yet</span></td></tr>'
    return (f'<div class="mmsa-history"><div class="mmsa-card-head">Your recent history</div>'
            f'<table class="mmsa-votes"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


# ---- review --------------------------------------------------------------------------------------------

def verdict_html(item: dict) -> str:
    """One disputed post's verdicts side by side (``annotations.review_post``'s dict): every annotator's label,
    note and time, the model's prediction, the majority or the tie, and the adjudication in force."""
    rows = "".join(
        f'<tr><td>{esc(r["annotator"])}</td><td class="mmsa-{esc(r["label"])}"><strong>{esc(r["label"])}</strong></td>'
        f'<td>{esc(r["note"] or "")}</td><td>{esc(r["labelled_at"][:19].replace("T", " "))}</td></tr>'
        for r in item["labels"]) or '<tr><td colspan="4"><span class="mmsa-muted">no label in force</span></td></tr>'
    pred = item.get("prediction")
    model = '<div><span class="mmsa-muted">No model prediction.</span></div>'
    if pred:
        model = (f'<div>Model <code>{esc(pred["model_name"] or "")}</code> predicts <strong>{esc(pred["label"])}'
                 f'</strong> ({100 * max(pred["probs"].values()):.0f}%)</div>')
    votes = " · ".join(f"{n} {esc(lab)}" for lab, n in item["votes"].items() if n)
    if item["tie"]:
        verdict = f'<div class="mmsa-conflict">Tie: {votes}; no majority</div>'
    elif item["majority"]:
        verdict = f'<div>Majority: <strong>{esc(item["majority"])}</strong> ({votes})</div>'
    else:
        verdict = '<div><span class="mmsa-muted">No votes.</span></div>'
    adj = item.get("adjudication")
    final = ""
    if adj:
        note = f' · “{esc(adj["note"])}”' if adj.get("note") else ""
        late = (' · <span class="mmsa-conflict">labels came in after this decision</span>' if adj.get("outdated")
                else "")
        final = (f'<div class="mmsa-final">Final label <strong>{esc(adj["label"])}</strong> by {esc(adj["reviewer"])} '
                 f'at {esc(adj["adjudicated_at"][:19].replace("T", " "))}{note}{late}</div>')
    return (f'<div class="mmsa-card mmsa-verdict" data-post="{item["post_id"]}"><div class="mmsa-card-head">'
            f'Labels for post #{item["post_id"]}</div><table class="mmsa-votes"><thead><tr><th>annotator</th>'
            f'<th>label</th><th>note</th><th>when (UTC)</th></tr></thead><tbody>{rows}</tbody></table>'
            f'{model}{verdict}{final}</div>')
