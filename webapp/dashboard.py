"""Dashboard tab: label counts, agreement, model versions with held-out metrics and confusion matrices, export,
retrain, and the model served to everyone. Annotators see it; exporting, retraining and choosing the model
are for admins."""
from __future__ import annotations

import hashlib
import html
import json
import logging
import shutil
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from .context import AppContext
from .formatting import md_escape
from .identity import require_role
from .inputs import redact_paths, user_error, user_errors
from .models import resolve_choice
from .retrain_job import before_after_rows, plan_line, status_html

log = logging.getLogger(__name__)

LABEL_HEADERS = ["label", "labels in force"]
ANNOTATOR_HEADERS = ["annotator", "labels", "skips", "remaining", "negative", "neutral", "positive",
                     "agrees with model", "final labels given"]
VERSION_HEADERS = ["model", "default", "created", "trained on export", "judged on", "accuracy", "weighted F1",
                   "macro F1", "neutral recall"]
# A version's held-out figures, first found: MVSA val, else the audit set, else the recipe's cross-validation
# (a model refit on train+val has no val figures, and a retrain of it is judged on the audit set alone).
HELD_OUT = (("val", "MVSA val"), ("audit", "audit set"), ("cv", "cross-validation"))
_PLOTS: OrderedDict[str, object] = OrderedDict()  # rendered confusion matrices (PIL images) by content
_PLOTS_KEPT = 32


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _num(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def stats_tables(st: dict) -> tuple[list[list], list[list], str]:
    """``annotations.stats`` -> (label rows, annotator rows, agreement markdown)."""
    labels = [[lab, n] for lab, n in st["labels"].items()]
    by_model = st["model_agreement"]["by_annotator"]
    annotators = [[name, a["labels"], a["skips"], a["remaining"], *a["by_label"].values(), _pct(by_model.get(name)),
                   a["adjudications"]] for name, a in st["annotators"].items()]
    ma = st["model_agreement"]
    review = st.get("review") or {"pending": 0, "adjudicated": 0}
    pairs = ", ".join(f"{' & '.join(md_escape(a) for a in p['annotators'])}: {_num(p['kappa'])} "
                      f"({p['n_posts']} posts)" for p in st["cohen_pairs"]) or "no post labelled by two annotators yet"
    md = (f"**{st['n_posts']}** posts, **{st['n_labelled_posts']}** labelled · Cohen's kappa (mean over pairs) "
          f"**{_num(st['cohen_kappa'])}** · Fleiss' kappa **{_num(st['fleiss_kappa'])}** "
          f"({st['fleiss_n_posts']} posts with 2+ labels)\n\n"
          f"Annotators vs model: agree on **{_pct(ma['fraction'])}** of {ma['n']} labels, "
          f"kappa **{_num(ma['kappa'])}**\n\nPairs: {pairs}\n\nReview: **{review['pending']}** disputed posts wait "
          f"for a final label · {review['adjudicated']} adjudicated · {st.get('n_set_aside', 0)} set aside "
          "(image missing)")
    return labels, annotators, md


def held_out(metrics: dict | None) -> tuple[str, dict] | None:
    """(where it was judged, its metrics): the first of ``HELD_OUT`` that the version's metrics hold."""
    for key, where in HELD_OUT:
        if (metrics or {}).get(key):
            return where, metrics[key]
    return None


def version_rows(versions: list[dict]) -> list[list]:
    rows = []
    for v in versions:
        where, m = held_out(v["metrics"]) or ("", {})
        neutral = m.get("neutral_recall", m.get("per_class", {}).get("neutral", {}).get("recall"))
        rows.append([v["name"], "✓" if v["is_default"] else "", v["created_at"][:19].replace("T", " "),
                     v["trained_on_export_id"] or "", where, _num(m.get("accuracy"), 2),
                     _num(m.get("weighted_f1"), 2), _num(m.get("macro_f1"), 2), _num(neutral)])
    return rows


def confusion_plot(name: str, where: str, val: dict):
    """A version's held-out confusion matrix (judged on ``where``) as a PIL image, rendered once per content
    (kept in memory: nothing is left on disk; Gradio's own cache, cleaned by ``delete_cache``, holds what the
    browser fetches)."""
    from PIL import Image

    from mmsa_core.evaluate import plot_confusion

    title = f"{name}\n{where}: acc {val['accuracy']:.1f} · wF1 {val['weighted_f1']:.1f}"
    key = hashlib.sha256(json.dumps([title, val["confusion_matrix"]]).encode()).hexdigest()[:12]
    if key not in _PLOTS:
        with tempfile.TemporaryDirectory(prefix="mmsa-plot-") as tmp:
            path = plot_confusion(val, Path(tmp) / "confusion.png", title=title)
            with Image.open(path) as im:
                _PLOTS[key] = im.convert("RGB")
        while len(_PLOTS) > _PLOTS_KEPT:
            _PLOTS.popitem(last=False)
    _PLOTS.move_to_end(key)
    return _PLOTS[key]


def confusion_strip(named_vals: list[tuple[str, str, dict]], limit: int = 4):
    """The held-out confusion matrices of up to ``limit`` models, (name, where judged, metrics), side by side
    in one image (None when there are none)."""
    from PIL import Image

    images = [confusion_plot(name, where, val) for name, where, val in named_vals[:limit]]
    if not images:
        return None
    strip = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)), "white")
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width
    return strip


def prune_exports(out_dir: Path, keep: int, protect: frozenset[str] = frozenset()) -> list[str]:
    """Delete all but the newest ``keep`` export snapshots in ``out_dir`` (folders named by export id, which
    starts with its UTC time) and their zips, sparing ``protect``ed ids (what model versions were trained on),
    plus the leftovers of crashed exports; returns what was deleted."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    snapshots = sorted(p for p in out_dir.iterdir() if p.is_dir() and (p / "manifest.json").is_file())
    zips = sorted(out_dir.glob("*.zip"))
    removed = []
    for path in snapshots[:-keep or None] if keep else snapshots:
        if path.name not in protect:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    for path in zips[:-keep or None] if keep else zips:
        path.unlink(missing_ok=True)
        removed.append(path.name)
    for path in out_dir.glob(".tmp-*"):  # an export that crashed; live ones are seconds old
        if time.time() - path.stat().st_mtime > 3600:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def export_summary(manifest: dict, kept: int) -> str:
    """What an export (format 2) holds, in one paragraph: posts, votes, final labels, ties, adjudications, files."""
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    n_labels = manifest.get("n_annotations")
    votes = f" ({n_labels} labels from every annotator)" if n_labels is not None else ""
    return (f"Exported **{manifest['n_posts']}** labelled posts{votes}: **{manifest['n_rows']}** with a final label "
            f"({counts}), {manifest['n_adjudicated']} adjudicated, {manifest['n_ties']} ties kept "
            f"({manifest['n_without_final_label']} still without a final label). The zip "
            f"{md_escape(manifest['export_id'])}.zip holds posts.jsonl, posts.csv, annotations.csv, the images and "
            f"an imagefolder/ for `datasets.load_dataset`; the server keeps the newest {kept} exports.")


class DashboardHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def served_version(self, model: str | None, registered: set[str]) -> list[dict]:
        """The model the selector serves, as a pseudo version (metrics from its checkpoint) unless registered."""
        from .models import ModelUnavailable

        try:
            choice, predictor = self.ctx.model(model)
        except ModelUnavailable:
            return []
        if choice.path in registered:
            return []
        return [{"name": f"{choice.name} (served)", "is_default": False, "created_at": predictor.meta.get(
            "created_at", ""), "trained_on_export_id": None, "metrics": predictor.meta.get("metrics")}]

    def refresh(self, model: str | None, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Counts, agreement, versions table and the confusion matrices (newest models first, one image)."""
        from annotations import list_model_versions, stats

        who = require_role(self.ctx.identify(request, profile), "annotator", "see the dashboard")
        with user_errors(who):
            with self.ctx.sessions() as s:
                st, versions = stats(s), list_model_versions(s)
            registered = {str(Path(v["checkpoint_path"]).resolve()) for v in versions}
            shown = self.served_version(model if who.is_admin else None, registered) + versions
        labels, annotators, md = stats_tables(st)
        judged = [(v["name"], *h) for v in shown if (h := held_out(v["metrics"]))]
        plots = confusion_strip([j for j in judged if "confusion_matrix" in j[2]])
        return labels, annotators, md, version_rows(shown), plots

    def export(self, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Write a snapshot of every annotator's labels and hand it to the browser as a zip (admins only) ->
        (the zip, for the download button the page then shows and presses; a summary of what it holds).
        Snapshot and zip stay in ``<data>/exports``, which keeps the newest ``exports_keep`` of each; the
        browser gets a copy in Gradio's cache, named after the export, never a server path."""
        from gradio.processing_utils import save_file_to_cache
        from gradio.utils import get_upload_folder

        from annotations import export_snapshot, list_model_versions

        who = require_role(self.ctx.identify(request, profile), "admin", "export")
        out = self.ctx.settings.data_dir / "exports"
        with user_errors(who):
            with self.ctx.sessions.begin() as s:
                manifest = export_snapshot(s, self.ctx.settings.data_dir, out)
                protect = frozenset(v["trained_on_export_id"] for v in list_model_versions(s)
                                    if v["trained_on_export_id"])
        zip_path = shutil.make_archive(str(out / manifest["export_id"]), "zip", manifest["path"])
        if not self.ctx.retrain.running():  # a running retrain may be reading its snapshot
            prune_exports(out, self.ctx.settings.exports_keep, protect | {manifest["export_id"]})
        cached = save_file_to_cache(zip_path, get_upload_folder())  # Gradio serves (and cleans) its copy
        return cached, export_summary(manifest, self.ctx.settings.exports_keep)

    def start_retrain(self, force: bool, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Queue a retrain run by its own process (admins only; one at a time, then a cool-down) -> (status,
        the polling timer switched on)."""
        from annotations.jobs import JobBusy

        who = require_role(self.ctx.identify(request, profile), "admin", "retrain")
        with user_errors(who):  # retrain the model the app serves by default
            base = resolve_choice("", self.ctx.model_choices()).path
        try:
            job = self.ctx.retrain.start(who.name, bool(force), base)
        except JobBusy as e:  # a second click, another admin, another replica: say what is running
            raise user_error(str(e)) from None
        except OSError as e:
            raise user_error(f"The retraining process could not start: {e}", reveal_paths=who.is_admin) from e
        return status_html(job), gr.Timer(active=True)

    def cancel_retrain(self, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Ask the running retrain to stop (admins only); the current model keeps serving."""
        require_role(self.ctx.identify(request, profile), "admin", "cancel a retrain")
        job = self.ctx.retrain.cancel()
        if job is None:
            raise user_error("No retrain is running")
        return status_html(job), gr.Timer(active=True)

    def retrain_status(self, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """The latest job's progress bar or outcome, what a retrain would train on, its before/after table
        when done, and the polling timer on while it runs."""
        job = self.ctx.retrain.latest()
        active = bool(job) and job["state"] in ("queued", "running")
        rows = before_after_rows(job["report"]) if job and job["state"] == "done" else []
        md = status_html(job)
        if not active:
            md += f"<p>{html.escape(self._plan())}</p>"
        if request is not None and not self.ctx.identify(request, profile).is_admin:
            md = redact_paths(md)
        return md, rows, gr.Timer(active=active)

    def _plan(self) -> str:
        from annotations import stats

        with self.ctx.sessions() as s:
            n = stats(s)["n_labelled_posts"]
        return plan_line((self.ctx.settings.mvsa_dir / "posts.csv").is_file(), n, self._serves_val_trained())

    def _serves_val_trained(self) -> bool:
        """Whether MVSA val trained the model everyone is served (what retraining starts from)."""
        from mmsa_core.checkpoint import trained_on_val

        from .models import ModelUnavailable

        try:
            return trained_on_val(self.ctx.model(None)[1].meta)
        except ModelUnavailable:
            return False

    def poll_retrain(self, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """``retrain_status`` plus, once a promoted model is ready, the model menu moved onto it (admins)."""
        job = self.ctx.retrain.latest()
        menu = gr.skip()
        admin = request is None or self.ctx.identify(request, profile).is_admin
        if job and job["state"] == "done" and (job["report"] or {}).get("promoted") and admin:
            choices = self.ctx.model_choices()
            menu = gr.Dropdown(choices=[(c.label, c.path) for c in choices], value=choices[0].path)
        return (*self.retrain_status(request, profile), menu)

    def serve_model(self, model: str | None, request: gr.Request = None, profile: gr.OAuthProfile | None = None):
        """Make the selected model the one served to everyone (admins only): registers it as a model version
        when it is a plain file, then marks it the default -> (confirmation, refreshed menu)."""
        from annotations import list_model_versions, register_model_version, set_default_model

        who = require_role(self.ctx.identify(request, profile), "admin", "choose the model served to everyone")
        with user_errors(who):
            choice = resolve_choice(model or "", self.ctx.model_choices())
            with self.ctx.sessions.begin() as s:
                versions = list_model_versions(s)
                same = [v for v in versions if str(Path(v["checkpoint_path"]).resolve()) == choice.path]
                if same:
                    name = set_default_model(s, same[0]["name"])["name"]
                else:
                    taken = {v["name"] for v in versions}
                    name = choice.name if choice.name not in taken else f"{choice.name}-{int(time.time())}"
                    name = register_model_version(s, name, choice.path, make_default=True)["name"]
            choices = self.ctx.model_choices()
        menu = gr.Dropdown(choices=[(c.label, c.path) for c in choices], value=choices[0].path)
        return f"✓ Everyone is now served **{md_escape(name)}**.", menu
