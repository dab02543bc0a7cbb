"""Keyboard shortcuts (Gradio has none built in), the guard that keeps an explanation with its post, and the
page's CSS.

1 / 2 / 3 press the visible negative / neutral / positive button, s skip, u undo, n or Enter the visible
"next" button. A button opts in with ``elem_classes=["hotkey-1"]`` and so on; the handler clicks the one on
the visible tab and ignores keys typed into text fields, so typing a note never labels a post. Esc leaves
any text field (blur), so that the next key press acts. Enter on a focused button, link or tab keeps its
own meaning.

The tab opened last is kept in the browser's local storage and reopened on the next visit (``REOPEN_TAB``).

The guard: every post card and explanation card carries ``data-post``; when the Annotate tab's explanation
panel holds another post's explanation than its post card, it is hidden and says "Explaining post #N…"
instead. The server already drops stale explanations (``webapp.annotate``); this covers the
moment between two responses.
"""
from __future__ import annotations

HOTKEYS = {"1": "hotkey-1", "2": "hotkey-2", "3": "hotkey-3", "s": "hotkey-s", "u": "hotkey-u", "n": "hotkey-n",
           "enter": "hotkey-n"}

# Passed to ``launch(js=...)``: runs once when the page loads.
HOTKEYS_JS = """
() => {
  const keys = %s;
  const TAB_KEY = "mmsa-tab";
  const typing = (el) => !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)
                                   || !!el.closest("[contenteditable='true']"));
  const own_enter = (el) => !!el && (["BUTTON", "A", "SUMMARY"].includes(el.tagName)
                                     || el.getAttribute("role") === "tab");
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    const active = document.activeElement;
    if (ev.key === "Escape") {
      if (typing(ev.target) || typing(active)) { (typing(active) ? active : ev.target).blur(); ev.preventDefault(); }
      return;
    }
    if (typing(ev.target) || typing(active)) return;
    const key = ev.key.toLowerCase();
    if (key === "enter" && (own_enter(ev.target) || own_enter(active))) return;
    const cls = keys[key];
    if (!cls) return;
    const button = [...document.querySelectorAll("button." + cls)]
      .find((b) => b.offsetParent !== null && !b.disabled);
    if (!button) return;
    ev.preventDefault();
    button.click();
  }, true);
  const guard = () => {
    const card = document.querySelector("#annotate-card .mmsa-card");
    const expl = document.querySelector("#annotate-explanation .mmsa-explanation");
    if (!card || !expl) return;
    const shown = card.dataset.post || "";
    const stale = (expl.dataset.post || "") !== shown;
    if (stale) expl.dataset.for = shown;
    if (expl.classList.contains("mmsa-stale") !== stale) expl.classList.toggle("mmsa-stale", stale);
  };
  document.addEventListener("click", (ev) => {  // the tab last opened, reopened on the next visit
    const tab = ev.target.closest && ev.target.closest("[role=tab]");
    if (tab) localStorage.setItem(TAB_KEY, tab.innerText.trim());
  }, true);
  new MutationObserver(guard).observe(document.body, {childList: true, subtree: true, attributes: true,
                                                      attributeFilter: ["data-post"]});
}
""" % str(HOTKEYS).replace("'", '"')

# Run once the page has its name and queue back (after the load event): click the tab opened last, as a
# person would, so that its own events run (the Annotate tab shows its next post). Not an output of the load
# event: a Tabs output makes the page walk over every component on each later event.
REOPEN_TAB = """() => {
  const label = localStorage.getItem("mmsa-tab");
  const tab = [...document.querySelectorAll("[role=tab]")].find((b) => b.innerText.trim() === label);
  if (tab && tab.getAttribute("aria-selected") !== "true") tab.click();
}"""

CSS = """
.hotkey-hint { opacity: 0.7; font-size: 0.85em; }
#storage-banner { border: 1px solid #e4a11b; background: #fff6e0; border-radius: 6px; padding: 4px 12px; }
#app-title { align-self: center; }
#app-title p { margin: 0; font-size: 0.95em; }
#identity-banner p { margin: 0; font-size: 0.85em; }
.mmsa-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; }
.mmsa-card-head { font-weight: 600; margin-bottom: 4px; }
.mmsa-empty { opacity: 0.8; padding: 24px 10px; }
.mmsa-card:empty { display: none; }
.mmsa-post-img { display: block; max-width: 100%; max-height: 42vh; margin: 0 auto 6px; object-fit: contain; }
.mmsa-text { white-space: pre-wrap; overflow-wrap: anywhere; }
.mmsa-long summary { cursor: pointer; list-style: none; }
.mmsa-long summary::-webkit-details-marker { display: none; }
.mmsa-more, .mmsa-less, .mmsa-inline summary { color: var(--link-text-color, #2563eb); cursor: pointer; }
.mmsa-less, .mmsa-long[open] .mmsa-preview, .mmsa-long[open] .mmsa-more { display: none; }
.mmsa-long[open] .mmsa-less { display: inline; }
.mmsa-full, .mmsa-inline { max-height: 40vh; overflow-y: auto; }
.mmsa-inline { display: inline; }
.mmsa-suggestion .mmsa-suggests { margin-bottom: 2px; }
.mmsa-bar { display: flex; align-items: center; gap: 6px; font-size: 0.9em; }
.mmsa-bar-label { width: 5.5em; } .mmsa-bar-pct { width: 3em; text-align: right; }
.mmsa-bar-track { flex: 1; height: 8px; background: var(--neutral-200, #e5e7eb); border-radius: 4px; }
.mmsa-bar-fill { display: block; height: 100%; border-radius: 4px; background: #9ca3af; }
.mmsa-bar-fill.mmsa-negative { background: #dc2626; } .mmsa-bar-fill.mmsa-positive { background: #16a34a; }
.mmsa-conflict { color: #b91c1c; font-weight: 600; }
.mmsa-caveat { font-size: 0.82em; opacity: 0.8; }
.mmsa-muted { font-style: italic; opacity: 0.8; }
.mmsa-expl-body { display: flex; gap: 10px; flex-wrap: wrap; }
.mmsa-overlay { margin: 0; flex: 0 1 45%; min-width: 160px; }
.mmsa-overlay img { max-width: 100%; max-height: 30vh; display: block; }
.mmsa-words { flex: 1 1 50%; min-width: 200px; }
.mmsa-legend { font-size: 0.82em; opacity: 0.8; }
.mmsa-wordlist { line-height: 1.9; }
.mmsa-word { padding: 1px 3px; border-radius: 3px; }
.mmsa-stale > * { display: none; }
.mmsa-stale::before { content: "Explaining post #" attr(data-for) "…"; font-weight: 600; }
.mmsa-progress { font-size: 0.9em; }
.mmsa-prog-bar { display: flex; height: 8px; border-radius: 4px; overflow: hidden; background: #e5e7eb; }
.mmsa-prog-done { background: #16a34a; } .mmsa-prog-skipped { background: #e4a11b; }
.mmsa-prog-remaining { background: #e5e7eb; }
.mmsa-votes { width: 100%; border-collapse: collapse; font-size: 0.9em; }
.mmsa-votes td, .mmsa-votes th { border-bottom: 1px solid var(--border-color-primary); padding: 2px 6px;
                                 text-align: left; overflow-wrap: anywhere; }
.mmsa-final { margin-top: 4px; }
#annotate-buttons button, #review-buttons button { min-width: 0; padding-left: 4px; padding-right: 4px;
                                                   white-space: nowrap; }
"""


def key_for(css_class: str) -> str:
    """The key that presses a button with this class (for the button's caption)."""
    return next(k for k, v in HOTKEYS.items() if v == css_class)
