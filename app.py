"""MMSA: image + text sentiment. Analyze posts, annotate a queue, watch the model improve.

    python app.py        # http://127.0.0.1:7860, offline, the shipped model, SQLite under ./data

Wiring only: the handlers live in ``webapp/`` and call ``mmsa_core`` and ``annotations``. Importing this
module builds nothing; ``build_demo()`` builds the Blocks without touching the database or a model
(both open on first use). Settings come from the environment, see ``webapp/settings.py``.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no network calls
# Before torch loads: OpenMP threads sleep instead of spinning while they wait. On a CPU shared with another
# busy process (a training job), spinning threads made one prediction take 4.5 s instead of 0.12 s
# (docs/app.md#measured). OMP_WAIT_POLICY=ACTIVE in the environment restores OpenMP's default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging  # noqa: E402
import threading  # noqa: E402

import gradio as gr  # noqa: E402

from annotations.labels import LABELS  # noqa: E402
from webapp.analyze import AnalyzeHandlers  # noqa: E402
from webapp.annotate import AnnotateHandlers  # noqa: E402
from webapp.cards import explaining_card, message_card  # noqa: E402
from webapp.context import AppContext  # noqa: E402
from webapp.dashboard import ANNOTATOR_HEADERS, LABEL_HEADERS, VERSION_HEADERS, DashboardHandlers  # noqa: E402
from webapp.examples import ASSETS, load_examples  # noqa: E402
from webapp.formatting import WORD_VIEWS, method_choices  # noqa: E402
from webapp.hotkeys import CSS, HOTKEYS_JS, REOPEN_TAB  # noqa: E402
from webapp.inputs import CheckedImage, PostIdNumber  # noqa: E402
from webapp.models import gpu_decorator  # noqa: E402
from webapp.retrain_job import TABLE_HEADERS  # noqa: E402
from webapp.review import DISPUTE_HEADERS, ReviewHandlers  # noqa: E402
from webapp.settings import storage_warning  # noqa: E402

MODEL_CONCURRENCY = int(os.environ.get("MMSA_MODEL_CONCURRENCY", "2"))  # model calls at once (CPU cores)
NO_LATEX: list = []  # Markdown that shows user text renders no math either


def _model_queues(limits_enabled: bool) -> tuple[dict, dict]:
    """Event settings for predictions and for explanations: two queues, so that a burst of explanations does not
    hold every label back; one shared queue, as before, when the limits are off (MMSA_LIMITS=off, benchmarks)."""
    if not limits_enabled:
        shared = dict(concurrency_id="model", concurrency_limit=MODEL_CONCURRENCY)
        return shared, shared
    return (dict(concurrency_id="predict", concurrency_limit=MODEL_CONCURRENCY),
            dict(concurrency_id="explain", concurrency_limit=MODEL_CONCURRENCY))


# Browser-side: press a button as soon as it is on the page (it may be drawn a frame after it was made visible).
CLICK_WHEN_SHOWN = """() => { let tries = 0; const press = () => { const b = document.getElementById('%s');
  if (b && b.offsetParent !== null) b.click(); else if (tries++ < 50) setTimeout(press, 100); }; press(); }"""


def _with_label(index: int, label: str) -> str:
    """Browser-side: replace input ``index`` (the hidden label field) by the clicked button's label."""
    return f"(...args) => {{ args[{index}] = {label!r}; return args; }}"


def _header(ctx: AppContext, analyze: AnalyzeHandlers, sign_in: bool):
    """Title, who you are (a typed name in open mode, else the signed-in name; the Hugging Face sign-in on a
    Space), the model selector (admins choose; everyone else sees the model served to everyone), the
    who-am-I line, and the storage banner (shown to admins on load)."""
    with gr.Row():
        gr.Markdown("**MMSA** · image + text sentiment", elem_id="app-title")
        name = gr.Textbox(label="Your name (annotator)", placeholder="e.g. ana", scale=1, elem_id="annotator-name")
        if sign_in:
            gr.LoginButton(scale=0)
        model = gr.Dropdown([], value="", label="Model", allow_custom_value=True, scale=1, elem_id="model-select")
        refresh = gr.Button("↻ Reload models", scale=0, min_width=110, size="sm", elem_id="model-refresh")
    identity = gr.Markdown(elem_id="identity-banner", latex_delimiters=NO_LATEX)
    warning = storage_warning(ctx.settings)
    banner = gr.Markdown(f"⚠ {warning}" if warning else "", visible=False, elem_id="storage-banner")
    refresh.click(analyze.model_menu, model, model, api_visibility="private")
    return name, model, identity, banner


def _label_buttons(prefix: str) -> list[gr.Button]:
    """One button per label with its key in the caption; the key handler clicks the visible one."""
    return [gr.Button(f"{lab} [{i}]", size="md", elem_classes=f"hotkey-{i}", elem_id=f"{prefix}-{lab}", min_width=90)
            for i, lab in enumerate(LABELS, 1)]


def _correction_box():
    """Note, one button per label (keys 1/2/3) and the confirmation line."""
    with gr.Group():
        gr.Markdown("**Wrong? Save the right label** (keys 1 / 2 / 3 when no text box has focus; Esc leaves one)",
                    elem_classes="hotkey-hint")
        note = gr.Textbox("", label="Note (optional)", placeholder="why, e.g. sarcasm")
        with gr.Row():
            buttons = _label_buttons("analyze")
        saved = gr.Markdown(label="confirmation", elem_id="analyze-saved", latex_delimiters=NO_LATEX)
    return note, buttons, saved


def _analyze_tab(analyze: AnalyzeHandlers, name, model, queues: tuple[dict, dict]) -> None:
    with gr.Row():
        with gr.Column():
            image = CheckedImage(label="Image (upload or paste)", type="filepath", image_mode=None,
                                 sources=["upload", "clipboard"], height=260, elem_id="analyze-image")
            text = gr.Textbox(label="Text", lines=2, placeholder="The post's text", elem_id="analyze-text")
            with gr.Row():
                method = gr.Dropdown(method_choices(), value="GradCAM", label="Heatmap method (time on a CPU)",
                                     elem_id="analyze-method")
                faithful = gr.Checkbox(True, label="Faithfulness scores (a second, slower pass)")
            run = gr.Button("Analyze", variant="primary", elem_id="analyze-run")
            gr.Examples([[ex.image, ex.text] for ex in load_examples()], [image, text], examples_per_page=3,
                        label="Examples (MVSA-Single, see assets/README.md)")
        with gr.Column():
            probs = gr.Label(label="Prediction", num_top_classes=3, elem_id="analyze-label")
            modality = gr.Markdown(label="modality", elem_id="analyze-modality")  # the conflict flag, with the label
            timing = gr.Markdown(label="timing", elem_id="analyze-timing", latex_delimiters=NO_LATEX)
            overlay = gr.Image(label="Heatmap overlay", type="pil", interactive=False, height=260,
                               elem_id="analyze-overlay")
            heatmap_note = gr.Markdown(label="heatmap_caveats", elem_id="analyze-heatmap-note",
                                       elem_classes="hotkey-hint", latex_delimiters=NO_LATEX)
            alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity")
            image_faith = gr.Markdown(label="heatmap_faithfulness")
            view = gr.Radio(list(WORD_VIEWS), value=WORD_VIEWS[0], label="Word scores")
            words = gr.HighlightedText(label="Words", elem_id="analyze-words")
            legend = gr.Markdown(label="word_legend", elem_id="analyze-legend", latex_delimiters=NO_LATEX)
            word_faith = gr.Markdown(label="word_faithfulness")
    with gr.Row():
        views = [gr.Label(label=f"{v} only (approximate)", num_top_classes=3) for v in ("Text", "Image")]
        views.append(gr.Label(label="Fused (both)", num_top_classes=3))
    note, buttons, saved = _correction_box()
    with gr.Accordion("Raw explanation (JSON) and other notes", open=False):
        notes, details = gr.Markdown(label="notes", latex_delimiters=NO_LATEX), gr.JSON(label="explanation")
    receipt, label = gr.JSON(visible=False, label="receipt"), gr.Textbox(visible=False, label="label")
    predicted, explained = gr.State(), gr.State()
    faithful_api = gr.Checkbox(False, visible=False, label="faithfulness")  # the UI asks in a second pass
    predict_queue, explain_queue = queues

    run.click(analyze.predict, [image, text, model], [probs, timing, predicted], api_name="predict",
              **predict_queue).success(
        analyze.explain, [image, text, model, method, alpha, view, faithful_api, predicted],
        [overlay, words, legend, *views, modality, heatmap_note, image_faith, word_faith, timing, notes, details,
         explained], api_name="explain", **explain_queue).success(
        analyze.faithfulness, [faithful, explained], [image_faith, word_faith, details, timing],
        api_visibility="private", **explain_queue)
    alpha.release(analyze.reblend, [explained, alpha], overlay, api_visibility="private")
    view.change(analyze.words, [explained, view], [words, legend], api_visibility="private")
    for i, button in enumerate(buttons):  # each button sends its own label (API clients pass ``label``)
        button.click(analyze.correct, [image, text, label, note, name, model, predicted, explained],
                     [saved, receipt], js=_with_label(2, LABELS[i]), api_name="correct" if i == 0 else None,
                     api_visibility="public" if i == 0 else "private").success(None, None, note, js="() => ''")


def _annotate_tab(annotate: AnnotateHandlers, name, model, explain_queue: dict, tab: gr.Tab) -> gr.Dropdown:
    """The queue: the post card (image, text, id) beside the suggestion, the label buttons and the explanation;
    returns the queue selector (its choice is kept in the browser)."""
    from annotations import STRATEGIES

    with gr.Row(equal_height=True):
        strategy = gr.Dropdown([(f"Queue: {s.replace('_', ' ')}", s) for s in STRATEGIES], value="least_confident",
                               label="Queue", show_label=False, container=False, scale=1, min_width=180,
                               elem_id="annotate-strategy")
        start = gr.Button("Next post [n]", variant="primary", size="md", scale=0, min_width=150,
                          elem_id="annotate-next", elem_classes="hotkey-n")
        progress = gr.HTML(elem_id="annotate-progress", scale=3, min_width=240)
    with gr.Row():
        with gr.Column(min_width=300):
            card = gr.HTML(message_card("Press “Next post [n]” (or Enter) to start."), elem_id="annotate-card")
        with gr.Column(min_width=300):
            suggestion = gr.HTML(elem_id="annotate-suggestion")
            with gr.Row(elem_id="annotate-buttons"):
                label_buttons = _label_buttons("annotate")
                skip = gr.Button("skip [s]", size="md", elem_classes="hotkey-s", elem_id="annotate-skip", min_width=70)
                undo = gr.Button("undo [u]", size="md", elem_classes="hotkey-u", elem_id="annotate-undo", min_width=70)
            note = gr.Textbox("", label="Note", show_label=False, container=False, elem_id="annotate-note",
                              placeholder="Note (optional; Esc leaves the box)")
            status = gr.Markdown(label="status", elem_id="annotate-status", latex_delimiters=NO_LATEX)
            explanation = gr.HTML(explaining_card(None), elem_id="annotate-explanation")
    gr.Markdown("Keys (when no text box has focus; **Esc** leaves one): **1** negative · **2** neutral · "
                "**3** positive · **s** skip · **u** undo · **n** or **Enter** next post",
                elem_classes="hotkey-hint")
    history = gr.HTML(elem_id="annotate-history")
    post_id = PostIdNumber(label="Post", precision=0, visible=False, elem_id="annotate-post")
    suggested = gr.JSON(visible=False, label="suggestion")
    receipt, current, nothing = gr.JSON(visible=False, label="receipt"), gr.State(), gr.State()
    label = gr.Textbox(visible=False, label="label")

    outputs = [post_id, card, suggestion, suggested, explanation, progress, history, status, receipt, current]
    # No progress overlay on the outputs: the card changes at once, and the panel says "Explaining post #N…"
    # itself (the overlays also cost the page a redraw of every output twice per key press).
    quiet = dict(show_progress="hidden")
    then = dict(fn=annotate.explain, inputs=[current, model], outputs=explanation, api_visibility="private",
                **explain_queue, **quiet)
    shown = [start.click(annotate.next_post, [name, strategy, model], outputs, api_name="next_post", **quiet)]
    for i, button in enumerate(label_buttons):
        shown.append(button.click(annotate.label, [name, post_id, label, note, strategy, model, current], outputs,
                                  js=_with_label(2, LABELS[i]), api_name="label_post" if i == 0 else None,
                                  api_visibility="public" if i == 0 else "private", **quiet))
        shown[-1].success(None, None, note, js="() => ''", **quiet)
    shown.append(skip.click(annotate.skip, [name, post_id, strategy, model], outputs, api_name="skip_post", **quiet))
    shown.append(undo.click(annotate.undo, [name, strategy, model], outputs, api_name="undo", **quiet))
    shown.append(tab.select(annotate.open_tab, [name, strategy, model, current], outputs, api_visibility="private",
                            **quiet))
    shown.append(strategy.input(annotate.open_tab, [name, strategy, model, nothing], outputs,
                                api_visibility="private", **quiet))
    explains = [event.success(**then) for event in shown]
    for trigger in (start, *label_buttons, skip, undo):  # a new post: explanations still running are dropped
        trigger.click(None, None, None, cancels=explains)
    strategy.input(None, None, None, cancels=explains)
    return strategy


def _review_tab(review: ReviewHandlers, name, tab: gr.Tab) -> None:
    """Disputed posts, every annotator's label side by side, and the final label (reviewers and admins)."""
    counts = gr.Markdown(elem_id="review-counts", latex_delimiters=NO_LATEX)
    with gr.Row():
        with gr.Column(min_width=300):
            card = gr.HTML(message_card("Open this tab as a reviewer or admin to see disputed posts."),
                           elem_id="review-card")
        with gr.Column(min_width=300):
            verdict = gr.HTML(elem_id="review-verdict")
            with gr.Row(elem_id="review-buttons"):
                finals = _label_buttons("review")
                after = gr.Button("next dispute [n]", size="md", elem_classes="hotkey-n", elem_id="review-next",
                                  min_width=90)
            note = gr.Textbox("", label="Reviewer note (optional; Esc leaves the box)", elem_id="review-note")
            status = gr.Markdown(elem_id="review-status", latex_delimiters=NO_LATEX)
            with gr.Row():
                include = gr.Checkbox(False, label="List adjudicated posts too", elem_id="review-include")
                refresh = gr.Button("Refresh", size="sm", elem_id="review-refresh")
    disputes = gr.Dataframe(headers=DISPUTE_HEADERS, label="Disputed posts (click a row to review it)",
                            interactive=False, elem_id="review-disputes")
    post_id = PostIdNumber(label="Post", precision=0, visible=False, elem_id="review-post")
    receipt, label = gr.JSON(visible=False, label="receipt"), gr.Textbox(visible=False, label="label")
    detail = [card, verdict, post_id]

    gr.on([tab.select, include.change], review.open_tab, [include, name], [counts, disputes, *detail],
          api_visibility="private")
    refresh.click(review.load, [include, name], [counts, disputes, *detail], api_name="review")
    disputes.select(review.select, [include, name], detail, api_visibility="private")
    after.click(review.next_dispute, [post_id, include, name], detail, api_visibility="private")
    for i, button in enumerate(finals):
        button.click(review.adjudicate, [post_id, label, note, include, name],
                     [status, receipt, counts, disputes, *detail], js=_with_label(1, LABELS[i]),
                     api_name="adjudicate" if i == 0 else None,
                     api_visibility="public" if i == 0 else "private").success(None, None, note, js="() => ''")


def _dashboard_tab(dash: DashboardHandlers, model, tab: gr.Tab) -> None:
    refresh = gr.Button("Refresh", size="sm", elem_id="dashboard-refresh")
    with gr.Row():  # the wide tables get the page's whole width
        summary = gr.Markdown(label="agreement", elem_id="dashboard-agreement", latex_delimiters=NO_LATEX)
        labels = gr.Dataframe(headers=LABEL_HEADERS, label="Labels in force", interactive=False, scale=0,
                              min_width=260)
    annotators = gr.Dataframe(headers=ANNOTATOR_HEADERS, label="Per annotator (labels, skips and remaining in "
                              "force; remaining as their progress bar counts it)", interactive=False,
                              elem_id="dashboard-annotators")
    versions = gr.Dataframe(headers=VERSION_HEADERS, label="Model versions (held-out metrics: MVSA val, else the "
                            "audit set, else cross-validation)", interactive=False, elem_id="dashboard-versions")
    plots = gr.Image(label="Held-out confusion matrices (rows: true, columns: predicted)", type="filepath",
                     interactive=False, height=320, elem_id="dashboard-confusion")
    with gr.Row():
        with gr.Column():
            export = gr.Button("Export snapshot (admins)", elem_id="dashboard-export")
            download = gr.DownloadButton("Download the snapshot again", visible=False, elem_id="dashboard-download")
            export_md = gr.Markdown(label="export_summary", elem_id="dashboard-export-summary")
        with gr.Column():
            with gr.Row():
                retrain = gr.Button("Retrain now (admins)", variant="primary", elem_id="dashboard-retrain")
                cancel = gr.Button("Cancel retrain", elem_id="dashboard-retrain-cancel")
            force = gr.Checkbox(False, label="Promote even if it is worse on the audit set or val")
            retrain_md = gr.HTML(elem_id="dashboard-retrain-status")
        with gr.Column():
            serve = gr.Button("Serve the selected model to everyone (admins)", elem_id="dashboard-serve")
            serve_md = gr.Markdown(label="serve_status", latex_delimiters=NO_LATEX)
    before_after = gr.Dataframe(headers=TABLE_HEADERS, label="Last retrain: before / after", interactive=False)
    timer = gr.Timer(2.0, active=False)

    stats_outputs = [labels, annotators, summary, versions, plots]
    gr.on([refresh.click, tab.select], dash.refresh, model, stats_outputs, api_name="dashboard")
    export.click(dash.export, None, [download, export_md], api_name="export").success(
        lambda: gr.DownloadButton(visible=True), None, download, api_visibility="private").success(
        None, None, None, js=CLICK_WHEN_SHOWN % "dashboard-download")  # the download starts by itself
    retrain.click(dash.start_retrain, force, [retrain_md, timer], api_name="retrain")
    cancel.click(dash.cancel_retrain, None, [retrain_md, timer], api_name="cancel_retrain")
    serve.click(dash.serve_model, model, [serve_md, model], api_name="serve_model")
    timer.tick(dash.poll_retrain, None, [retrain_md, before_after, timer, model], api_visibility="private")
    tab.select(dash.retrain_status, None, [retrain_md, before_after, timer], api_visibility="private")


def build_demo(ctx: AppContext | None = None) -> gr.Blocks:
    """The whole app; ``ctx`` defaults to settings from the environment."""
    from webapp.auth import SessionHandlers, sign_in_available

    ctx = ctx or AppContext()
    gpu = gpu_decorator()
    analyze, annotate, dash = AnalyzeHandlers(ctx, gpu), AnnotateHandlers(ctx, gpu), DashboardHandlers(ctx)
    session = SessionHandlers(ctx)
    sign_in = sign_in_available(ctx.settings.on_space)
    queues = _model_queues(ctx.settings.limits_enabled)
    # delete_cache: Gradio's copies of what the app hands out (overlays, zips, plots) go after an hour.
    with gr.Blocks(title="MMSA · image + text sentiment", delete_cache=(1800, 3600)) as demo:
        # The typed name (open mode) and the queue, kept in the browser across reloads (not secret); one store
        # each, so that no two events ever write the same one. The tab is kept by the page script (hotkeys.py).
        kept = {key: gr.BrowserState(default, storage_key=f"mmsa-{key}", secret="mmsa-prefs")
                for key, default in (("name", ""), ("queue", "least_confident"))}
        name, model, identity, banner = _header(ctx, analyze, sign_in)
        with gr.Tabs():
            with gr.Tab("Analyze", id="analyze"):
                _analyze_tab(analyze, name, model, queues)
            with gr.Tab("Annotate", id="annotate") as annotate_tab:
                strategy = _annotate_tab(annotate, name, model, queues[1], annotate_tab)
            with gr.Tab("Review", id="review") as review_tab:
                _review_tab(ReviewHandlers(ctx), name, review_tab)
            with gr.Tab("Dashboard", id="dashboard") as dashboard:
                _dashboard_tab(dash, model, dashboard)
        # Then the page reopens the tab opened last (hotkeys.REOPEN_TAB), once the name is back.
        demo.load(session.on_load, [kept["name"], kept["queue"]], [name, identity, banner, strategy],
                  api_visibility="private").then(None, None, None, js=REOPEN_TAB)
        demo.load(analyze.model_menu, model, model, api_visibility="private")
        name.change(None, name, kept["name"], js="(n) => n")
        strategy.change(None, strategy, kept["queue"], js="(s) => s")
    # Database actions run 8 at once, model calls are limited per event; a full queue refuses at once.
    demo.queue(default_concurrency_limit=8, max_size=ctx.settings.queue_max)
    return demo


def launch_kwargs(ctx: AppContext | None = None) -> dict:
    """What ``launch`` needs besides the Blocks: hotkeys, CSS, the folders images are served from, and the
    access mode's part (opens the database: whether accounts exist decides the mode). Accounts mode asks for
    a login (checked against the accounts table); open mode listens on 127.0.0.1 unless GRADIO_SERVER_NAME
    says otherwise."""
    ctx = ctx or AppContext()
    settings = ctx.settings
    kwargs = {"js": HOTKEYS_JS, "css": CSS, "max_file_size": "64mb",
              "allowed_paths": [str(ASSETS), str((settings.data_dir / "images").resolve())]}
    mode = ctx.access.mode
    if mode == "accounts":
        kwargs["auth"] = ctx.check_login
        kwargs["auth_message"] = ("Sign in with your MMSA account (an admin creates it: "
                                  "python -m annotations.accounts add NAME --role annotator --password-stdin).")
    elif mode == "open":
        kwargs["server_name"] = os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
        if kwargs["server_name"] not in ("127.0.0.1", "localhost", "::1"):
            logging.getLogger(__name__).warning(
                "open mode on %s: anyone who can reach it can write under any name; add an account to require "
                "a login (python -m annotations.accounts add ...)", kwargs["server_name"])
    return kwargs


def serve(demo: gr.Blocks, ctx: AppContext, **overrides) -> str:
    """Launch without blocking (tests, ``main``): ``launch_kwargs`` plus ``overrides``; then API tokens pass the
    login wall in accounts mode. Returns the local URL."""
    from webapp.auth import accept_token_logins

    app_, url, _ = demo.launch(prevent_thread_lock=True, **{**launch_kwargs(ctx), **overrides})
    accept_token_logins(app_, ctx)
    return url


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for chatty in ("httpx", "alembic.runtime.plugins"):  # a line per request / per Alembic plugin
        logging.getLogger(chatty).setLevel(logging.WARNING)
    ctx = AppContext()
    demo = build_demo(ctx)
    threading.Thread(target=ctx.warm_up, name="warm-up", daemon=True).start()
    serve(demo, ctx)
    demo.block_thread()


if __name__ == "__main__":
    main()
