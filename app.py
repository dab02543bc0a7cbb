"""MMSA: image + text sentiment. Analyze posts, annotate a queue, watch the model improve.

    python app.py        # http://127.0.0.1:7860, offline, the shipped model, SQLite under ./data

Wiring only: the handlers live in ``webapp/`` and call ``mmsa_core`` and ``annotations``. Importing this
module builds nothing; ``build_demo()`` builds the Blocks without touching the database or a model
(both open on first use). Settings come from the environment, see ``webapp/settings.py``.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no network calls

import logging  # noqa: E402
import threading  # noqa: E402

import gradio as gr  # noqa: E402

from annotations.labels import LABELS  # noqa: E402
from webapp.analyze import AnalyzeHandlers  # noqa: E402
from webapp.annotate import AnnotateHandlers  # noqa: E402
from webapp.context import AppContext  # noqa: E402
from webapp.dashboard import ANNOTATOR_HEADERS, LABEL_HEADERS, VERSION_HEADERS, DashboardHandlers  # noqa: E402
from webapp.examples import ASSETS, load_examples  # noqa: E402
from webapp.formatting import HISTORY_HEADERS, WORD_VIEWS  # noqa: E402
from webapp.hotkeys import CSS, HOTKEYS_JS  # noqa: E402
from webapp.inputs import CheckedImage, PostIdNumber  # noqa: E402
from webapp.models import gpu_decorator  # noqa: E402
from webapp.retrain_job import TABLE_HEADERS  # noqa: E402
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


def _with_label(index: int, label: str) -> str:
    """Browser-side: replace input ``index`` (the hidden label field) by the clicked button's label."""
    return f"(...args) => {{ args[{index}] = {label!r}; return args; }}"


def _header(ctx: AppContext, analyze: AnalyzeHandlers, sign_in: bool):
    """Banner, who you are (a typed name in open mode, else the signed-in name; the Hugging Face sign-in on a
    Space) and the model selector (admins choose; everyone else sees the model served to everyone)."""
    gr.Markdown("# MMSA · image + text sentiment\nAnalyze a post, annotate the queue, watch the model improve.")
    warning = storage_warning(ctx.settings)
    gr.Markdown(f"⚠ {warning}", visible=bool(warning), elem_id="storage-banner")
    identity = gr.Markdown(elem_id="identity-banner", latex_delimiters=NO_LATEX)
    with gr.Row():
        name = gr.Textbox(label="Your name (annotator)", placeholder="e.g. ana", scale=2, elem_id="annotator-name")
        if sign_in:
            gr.LoginButton(scale=1)
        model = gr.Dropdown([], value="", label="Model", allow_custom_value=True, scale=3, elem_id="model-select")
        refresh = gr.Button("↻", scale=0, min_width=48, size="sm")
    refresh.click(analyze.model_menu, model, model, api_visibility="private")
    return name, model, identity


def _correction_box():
    """Note, one button per label (keys 1/2/3) and the confirmation line."""
    with gr.Group():
        gr.Markdown("**Wrong? Save the right label** (keys 1 / 2 / 3 when no text box has focus)",
                    elem_classes="hotkey-hint")
        note = gr.Textbox("", label="Note (optional)", placeholder="why, e.g. sarcasm")
        with gr.Row():
            buttons = [gr.Button(lab, elem_classes=f"hotkey-{i}", elem_id=f"analyze-{lab}")
                       for i, lab in enumerate(LABELS, 1)]
        saved = gr.Markdown(label="confirmation", elem_id="analyze-saved", latex_delimiters=NO_LATEX)
    return note, buttons, saved


def _method_choices() -> list[tuple[str, str]]:
    from mmsa_core.explain import list_cam_methods
    from mmsa_core.explain.cam import SLOW_CAM_METHODS

    return [(f"{m} (slow, admins only)" if m in SLOW_CAM_METHODS else m, m) for m in list_cam_methods()]


def _analyze_tab(analyze: AnalyzeHandlers, name, model, queues: tuple[dict, dict]) -> None:
    with gr.Row():
        with gr.Column():
            image = CheckedImage(label="Image (upload or paste)", type="filepath", image_mode=None,
                                 sources=["upload", "clipboard"], height=260, elem_id="analyze-image")
            text = gr.Textbox(label="Text", lines=2, placeholder="The post's text", elem_id="analyze-text")
            with gr.Row():
                method = gr.Dropdown(_method_choices(), value="GradCAM", label="Heatmap method")
                faithful = gr.Checkbox(True, label="Faithfulness scores (a second, slower pass)")
            run = gr.Button("Analyze", variant="primary", elem_id="analyze-run")
            gr.Examples([[ex.image, ex.text] for ex in load_examples()], [image, text], examples_per_page=3,
                        label="Examples (MVSA-Single, see assets/README.md)")
        with gr.Column():
            probs = gr.Label(label="Prediction", num_top_classes=3, elem_id="analyze-label")
            timing = gr.Markdown(label="timing", elem_id="analyze-timing", latex_delimiters=NO_LATEX)
            overlay = gr.Image(label="Heatmap overlay", type="pil", interactive=False, height=260,
                               elem_id="analyze-overlay")
            alpha = gr.Slider(0, 1, value=0.5, step=0.05, label="Heatmap opacity")
            image_faith = gr.Markdown(label="heatmap_faithfulness")
            view = gr.Radio(list(WORD_VIEWS), value=WORD_VIEWS[0], label="Word scores")
            words = gr.HighlightedText(label="Words", elem_id="analyze-words")
            legend, word_faith = gr.Markdown(label="word_legend"), gr.Markdown(label="word_faithfulness")
    with gr.Row():
        views = [gr.Label(label=f"{v} only", num_top_classes=3) for v in ("Text", "Image")]
        views.append(gr.Label(label="Fused (both)", num_top_classes=3))
    modality = gr.Markdown(label="modality")
    note, buttons, saved = _correction_box()
    with gr.Accordion("Notes and raw explanation (JSON)", open=False):
        notes, details = gr.Markdown(label="notes", latex_delimiters=NO_LATEX), gr.JSON(label="explanation")
    receipt, label = gr.JSON(visible=False, label="receipt"), gr.Textbox(visible=False, label="label")
    predicted, explained = gr.State(), gr.State()
    faithful_api = gr.Checkbox(False, visible=False, label="faithfulness")  # the UI asks in a second pass
    predict_queue, explain_queue = queues

    run.click(analyze.predict, [image, text, model], [probs, timing, predicted], api_name="predict",
              **predict_queue).success(
        analyze.explain, [image, text, model, method, alpha, view, faithful_api, predicted],
        [overlay, words, legend, *views, modality, image_faith, word_faith, timing, notes, details, explained],
        api_name="explain", **explain_queue).success(
        analyze.faithfulness, [faithful, explained], [image_faith, word_faith, details, timing],
        api_visibility="private", **explain_queue)
    alpha.release(analyze.reblend, [explained, alpha], overlay, api_visibility="private")
    view.change(analyze.words, [explained, view], [words, legend], api_visibility="private")
    for i, button in enumerate(buttons):  # each button sends its own label (API clients pass ``label``)
        button.click(analyze.correct, [image, text, label, note, name, model, predicted, explained],
                     [saved, receipt], js=_with_label(2, LABELS[i]), api_name="correct" if i == 0 else None,
                     api_visibility="public" if i == 0 else "private")


def _annotate_tab(annotate: AnnotateHandlers, name, model, explain_queue: dict) -> None:
    from annotations import STRATEGIES

    with gr.Row():
        strategy = gr.Dropdown(list(STRATEGIES), value="least_confident", label="Queue", scale=2)
        start = gr.Button("Next post", variant="primary", scale=1, elem_id="annotate-next")
    progress = gr.Markdown(label="progress", elem_id="annotate-progress", latex_delimiters=NO_LATEX)
    with gr.Row():
        with gr.Column():
            post_id = PostIdNumber(label="Post", precision=0, interactive=False, elem_id="annotate-post")
            post_image = gr.Image(label="Image", type="filepath", interactive=False, height=300)
            post_text = gr.Textbox(label="Text", interactive=False, lines=3, elem_id="annotate-text")
        with gr.Column():
            suggestion = gr.Label(label="Model suggestion", num_top_classes=3)
            caption = gr.Markdown(label="suggestion_caption", latex_delimiters=NO_LATEX)
            overlay = gr.Image(label="Heatmap", type="pil", interactive=False, height=300, elem_id="annotate-overlay")
            words = gr.HighlightedText(label="Word attributions (red: towards the suggestion)",
                                       elem_id="annotate-words")
    gr.Markdown("Keys: **1** negative · **2** neutral · **3** positive · **s** skip · **u** undo "
                "(when no text box has focus)", elem_classes="hotkey-hint")
    note = gr.Textbox("", label="Note (optional)")
    with gr.Row():
        label_buttons = [gr.Button(lab, elem_classes=f"hotkey-{i}", elem_id=f"annotate-{lab}")
                         for i, lab in enumerate(LABELS, 1)]
        skip = gr.Button("skip", elem_classes="hotkey-s", elem_id="annotate-skip")
        undo = gr.Button("undo", elem_classes="hotkey-u", elem_id="annotate-undo")
    status = gr.Markdown(label="status", elem_id="annotate-status", latex_delimiters=NO_LATEX)
    history = gr.Dataframe(headers=HISTORY_HEADERS, label="Your recent history", interactive=False)
    receipt, current = gr.JSON(visible=False, label="receipt"), gr.State()
    label = gr.Textbox(visible=False, label="label")

    outputs = [post_id, post_image, post_text, suggestion, caption, progress, history, status, receipt, current]
    then = dict(fn=annotate.explain, inputs=[current, model], outputs=[overlay, words], api_visibility="private",
                **explain_queue)
    start.click(annotate.next_post, [name, strategy, model], outputs, api_name="next_post").success(**then)
    for i, button in enumerate(label_buttons):
        button.click(annotate.label, [name, post_id, label, note, strategy, model, current], outputs,
                     js=_with_label(2, LABELS[i]), api_name="label_post" if i == 0 else None,
                     api_visibility="public" if i == 0 else "private").success(
            None, None, note, js="() => ''").success(**then)
    skip.click(annotate.skip, [name, post_id, strategy, model], outputs, api_name="skip_post").success(**then)
    undo.click(annotate.undo, [name, strategy, model], outputs, api_name="undo").success(**then)


def _dashboard_tab(dash: DashboardHandlers, model, tab: gr.Tab) -> None:
    refresh = gr.Button("Refresh", elem_id="dashboard-refresh")
    summary = gr.Markdown(label="agreement", elem_id="dashboard-agreement", latex_delimiters=NO_LATEX)
    with gr.Row():
        labels = gr.Dataframe(headers=LABEL_HEADERS, label="Labels in force", interactive=False)
        annotators = gr.Dataframe(headers=ANNOTATOR_HEADERS, label="Per annotator", interactive=False,
                                  elem_id="dashboard-annotators")
    versions = gr.Dataframe(headers=VERSION_HEADERS, label="Model versions (val metrics)", interactive=False)
    plots = gr.Image(label="Val confusion matrices (rows: true, columns: predicted)", type="filepath",
                     interactive=False, height=320, elem_id="dashboard-confusion")
    with gr.Row():
        with gr.Column():
            export = gr.Button("Export snapshot (admins)", elem_id="dashboard-export")
            export_md = gr.Markdown(label="export_summary")
            download = gr.File(label="Snapshot (zip)", height=100)
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
    export.click(dash.export, None, [download, export_md], api_name="export")
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
    sign_in = sign_in_available(ctx.settings.on_space)
    queues = _model_queues(ctx.settings.limits_enabled)
    # delete_cache: Gradio's copies of what the app hands out (overlays, zips, plots) go after an hour.
    with gr.Blocks(title="MMSA · image + text sentiment", delete_cache=(1800, 3600)) as demo:
        name, model, identity = _header(ctx, analyze, sign_in)
        with gr.Tabs():
            with gr.Tab("Analyze", id="analyze"):
                _analyze_tab(analyze, name, model, queues)
            with gr.Tab("Annotate", id="annotate"):
                _annotate_tab(annotate, name, model, queues[1])
            with gr.Tab("Dashboard", id="dashboard") as dashboard:
                _dashboard_tab(dash, model, dashboard)
        demo.load(SessionHandlers(ctx).on_load, None, [name, identity], api_visibility="private")
        demo.load(analyze.model_menu, model, model, api_visibility="private")
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
