"""Review tab (reviewers and admins): disputed posts with every annotator's label, note and time side by side,
the model's prediction and the majority or tie, and the final label a reviewer records (an adjudication).

Others see why they cannot review; the API endpoints ``/review`` and ``/adjudicate`` refuse them."""
from __future__ import annotations

import html
import logging

import gradio as gr

from .cards import message_card, post_card, post_image_url, verdict_html
from .context import AppContext
from .identity import Identity, require_name, require_role
from .inputs import check_post_id, user_error, user_errors

log = logging.getLogger(__name__)

DISPUTE_HEADERS = ["post", "text", "labels", "majority", "model", "final"]
LISTED = 50  # disputes listed at once


def dispute_rows(items: list[dict]) -> list[list]:
    """``annotations.disputed_posts`` -> table rows (plain text: the table shows it as text)."""
    rows = []
    for it in items:
        text = it["text"] if len(it["text"]) <= 60 else it["text"][:59] + "…"
        labels = ", ".join(f'{r["annotator"]}: {r["label"]}' for r in it["labels"])
        rows.append([it["post_id"], text, labels, "tie" if it["tie"] else (it["majority"] or ""),
                     (it.get("prediction") or {}).get("label", ""), it["adjudicated"] or ""])
    return rows


def counts_markdown(counts: dict) -> str:
    return (f"**{counts['pending']}** disputed posts wait for a final label · **{counts['adjudicated']}** "
            f"adjudicated · {counts['disputed']} disputed in all (labels that disagree with each other or with the "
            "model)")


class ReviewHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _reviewer(self, request, profile, typed: str | None, action: str) -> Identity:
        return require_role(self.ctx.identify(request, profile, typed), "reviewer", action)

    def _listing(self, include_adjudicated: bool) -> tuple[str, list[dict]]:
        from annotations import disputed_posts, review_counts

        with self.ctx.sessions() as s:
            counts = review_counts(s)
            items = disputed_posts(s, limit=LISTED, include_adjudicated=bool(include_adjudicated),
                                   data_dir=self.ctx.settings.data_dir)
        return counts_markdown(counts), items

    def _detail(self, post_id: int | None) -> tuple[str, str, int | None]:
        """(post card, verdict card, post id) of one post; a line saying there is none."""
        from annotations import review_post

        if post_id is None:
            return message_card("No disputed post waits for a final label."), "", None
        with self.ctx.sessions() as s:
            item = review_post(s, post_id, self.ctx.settings.data_dir)
        image = item.get("image_path")
        card = post_card(item["post_id"], item["text"], post_image_url(image) if image else None)
        return card, verdict_html(item), item["post_id"]

    def load(self, include_adjudicated: bool = False, name: str | None = None, request: gr.Request = None,
             profile: gr.OAuthProfile | None = None):
        """Counts, the list of disputed posts and the first of them -> (counts, table, card, verdict, post id)."""
        who = self._reviewer(request, profile, name, "review disputed posts")
        with user_errors(who):
            md, items = self._listing(include_adjudicated)
            return (md, dispute_rows(items), *self._detail(items[0]["post_id"] if items else None))

    def open_tab(self, include_adjudicated: bool, name: str | None, request: gr.Request = None,
                 profile: gr.OAuthProfile | None = None):
        """``load`` for the tab: instead of an error, a line saying why this person cannot review."""
        try:
            return self.load(include_adjudicated, name, request, profile)
        except gr.Error as e:
            why = html.unescape(e.message)
            return (f"{why}. Reviewers and admins see disputed posts here and record their final label.", [],
                    message_card(why), "", None)

    def select(self, include_adjudicated: bool, name: str | None, evt: gr.SelectData, request: gr.Request = None,
               profile: gr.OAuthProfile | None = None):
        """Show the post of the clicked row -> (card, verdict, post id)."""
        who = self._reviewer(request, profile, name, "review disputed posts")
        row = evt.row_value or []
        with user_errors(who):
            return self._detail(check_post_id(int(row[0])) if row else None)

    def adjudicate(self, post_id: float | None, label: str, note: str | None, include_adjudicated: bool = False,
                   name: str | None = None, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Record the reviewer's final label for the post on screen, then show the next dispute -> (status,
        receipt, counts, table, card, verdict, post id)."""
        from annotations import adjudicate
        from annotations.labels import check_label, check_note

        who = self._reviewer(request, profile, name, "adjudicate")
        reviewer = require_name(who, "adjudicate")
        if post_id is None or post_id == "":
            raise user_error("No post on screen: pick a disputed post first")
        with user_errors(who):
            pid, label, note = check_post_id(post_id), check_label(label), check_note(note)
            with self.ctx.sessions.begin() as s:
                adj_id = adjudicate(s, pid, reviewer, label, note=note)
            md, items = self._listing(include_adjudicated)
            later = [it["post_id"] for it in items if it["post_id"] != pid]
            detail = self._detail(later[0] if later else None)
        receipt = {"adjudication_id": adj_id, "post_id": pid, "reviewer": reviewer, "label": label, "note": note}
        status = f"✓ Post #{pid}: final label **{label}** (adjudication #{adj_id})"
        return (status, receipt, md, dispute_rows(items), *detail)

    def next_dispute(self, post_id: float | None, include_adjudicated: bool, name: str | None,
                     request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """The dispute listed after the one on screen (wrapping around) -> (card, verdict, post id)."""
        who = self._reviewer(request, profile, name, "review disputed posts")
        with user_errors(who):
            _, items = self._listing(include_adjudicated)
            ids = [it["post_id"] for it in items]
            if not ids:
                return self._detail(None)
            at = ids.index(post_id) if post_id in ids else -1
            return self._detail(ids[(at + 1) % len(ids)])
