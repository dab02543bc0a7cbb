"""Keyboard shortcuts (Gradio has none built in) and the page's few CSS rules.

1 / 2 / 3 press the visible negative / neutral / positive button, s skip, u undo. A button opts in
with ``elem_classes=["hotkey-1"]`` and so on; the handler clicks the one on the visible tab and
ignores keys typed into text fields, so typing a note never labels a post.
"""
from __future__ import annotations

HOTKEYS = {"1": "hotkey-1", "2": "hotkey-2", "3": "hotkey-3", "s": "hotkey-s", "u": "hotkey-u"}

# Passed to ``launch(js=...)``: runs once when the page loads.
HOTKEYS_JS = """
() => {
  const keys = %s;
  const typing = (el) => !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)
                                   || !!el.closest("[contenteditable='true']"));
  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return;
    if (typing(ev.target) || typing(document.activeElement)) return;
    const cls = keys[ev.key.toLowerCase()];
    if (!cls) return;
    const button = [...document.querySelectorAll("button." + cls)]
      .find((b) => b.offsetParent !== null && !b.disabled);
    if (!button) return;
    ev.preventDefault();
    button.click();
  });
}
""" % str(HOTKEYS).replace("'", '"')

CSS = """
.hotkey-hint { opacity: 0.7; font-size: 0.85em; }
#storage-banner { border: 1px solid #e4a11b; background: #fff6e0; border-radius: 6px; padding: 4px 12px; }
"""


def key_for(css_class: str) -> str:
    """The key that presses a button with this class (for the button's caption)."""
    return next(k for k, v in HOTKEYS.items() if v == css_class)
