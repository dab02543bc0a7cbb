"""Dashboard tab: label counts, agreement, model versions with val metrics and confusion matrices, export."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import gradio as gr

from .context import AppContext
from .inputs import user_error, user_errors
from .models import resolve_choice
from .retrain_job import before_after_rows, status_markdown

log = logging.getLogger(__name__)

LABEL_HEADERS = ["label", "labels in force"]
ANNOTATOR_HEADERS = ["annotator", "labels", "skips", "negative", "neutral", "positive", "agrees with model"]
VERSION_HEADERS = ["model", "default", "created", "trained on export", "val accuracy", "val weighted F1",
                   "val macro F1", "val neutral recall"]
WORK_DIR = Path(tempfile.gettempdir()) / "mmsa-app"  # plots and export zips handed to the browser


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _num(v, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def stats_tables(st: dict) -> tuple[list[list], list[list], str]:
    """``annotations.stats`` -> (label rows, annotator rows, agreement markdown)."""
    labels = [[lab, n] for lab, n in st["labels"].items()]
    by_model = st["model_agreement"]["by_annotator"]
    annotators = [[name, a["labels"], a["skips"], *a["by_label"].values(), _pct(by_model.get(name))]
                  for name, a in st["annotators"].items()]
    ma = st["model_agreement"]
    pairs = ", ".join(f"{' & '.join(p['annotators'])}: {_num(p['kappa'])} ({p['n_posts']} posts)"
                      for p in st["cohen_pairs"]) or "no post labelled by two annotators yet"
    md = (f"**{st['n_posts']}** posts, **{st['n_labelled_posts']}** labelled · Cohen's kappa (mean over pairs) "
          f"**{_num(st['cohen_kappa'])}** · Fleiss' kappa **{_num(st['fleiss_kappa'])}** "
          f"({st['fleiss_n_posts']} posts with 2+ labels)\n\n"
          f"Annotators vs model: agree on **{_pct(ma['fraction'])}** of {ma['n']} labels, "
          f"kappa **{_num(ma['kappa'])}**\n\nPairs: {pairs}")
    return labels, annotators, md


def _val(metrics: dict | None) -> dict | None:
    return (metrics or {}).get("val")


def version_rows(versions: list[dict]) -> list[list]:
    rows = []
    for v in versions:
        m = _val(v["metrics"]) or {}
        neutral = m.get("neutral_recall", m.get("per_class", {}).get("neutral", {}).get("recall"))
        rows.append([v["name"], "✓" if v["is_default"] else "", v["created_at"][:19].replace("T", " "),
                     v["trained_on_export_id"] or "", _num(m.get("accuracy"), 2), _num(m.get("weighted_f1"), 2),
                     _num(m.get("macro_f1"), 2), _num(neutral)])
    return rows


def confusion_plot(name: str, val: dict) -> str:
    """A PNG of a version's val confusion matrix, cached by content (written aside, then renamed into place)."""
    from mmsa_core.evaluate import plot_confusion

    title = f"{name}\nval acc {val['accuracy']:.1f} · wF1 {val['weighted_f1']:.1f}"
    key = hashlib.sha256(json.dumps([title, val["confusion_matrix"]]).encode()).hexdigest()[:12]
    path = WORK_DIR / "plots" / f"confusion-{key}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{uuid.uuid4().hex}-{path.name}")
        plot_confusion(val, tmp, title=title)
        os.replace(tmp, path)
    return str(path)


def confusion_strip(named_vals: list[tuple[str, dict]], limit: int = 4) -> str | None:
    """The val confusion matrices of up to ``limit`` models side by side in one PNG (None when there are none)."""
    from PIL import Image

    paths = [confusion_plot(name, val) for name, val in named_vals[:limit]]
    if not paths:
        return None
    images = [Image.open(p).convert("RGB") for p in paths]
    strip = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)), "white")
    x = 0
    for im in images:
        strip.paste(im, (x, 0))
        x += im.width
    out = WORK_DIR / "plots" / f"strip-{'-'.join(Path(p).stem.split('-')[-1] for p in paths)}.png"
    tmp = out.with_name(f".{uuid.uuid4().hex}-{out.name}")
    strip.save(tmp)
    os.replace(tmp, out)
    return str(out)


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

    def refresh(self, model: str | None):
        """Counts, agreement, versions table and the confusion matrices (newest models first, one image)."""
        from annotations import list_model_versions, stats

        with user_errors():
            with self.ctx.sessions() as s:
                st, versions = stats(s), list_model_versions(s)
            registered = {str(Path(v["checkpoint_path"]).resolve()) for v in versions}
            shown = self.served_version(model, registered) + versions
        labels, annotators, md = stats_tables(st)
        plots = confusion_strip([(v["name"], _val(v["metrics"])) for v in shown
                                 if _val(v["metrics"]) and "confusion_matrix" in _val(v["metrics"])])
        return labels, annotators, md, version_rows(shown), plots

    def export(self):
        """Write a snapshot of the labelled posts and hand it to the browser as a zip."""
        from annotations import export_snapshot

        with user_errors():
            with self.ctx.sessions.begin() as s:
                manifest = export_snapshot(s, self.ctx.settings.data_dir)
        out = WORK_DIR / "exports"
        out.mkdir(parents=True, exist_ok=True)
        zip_path = shutil.make_archive(str(out / f"mmsa-export-{manifest['export_id']}"), "zip", manifest["path"])
        counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
        md = (f"Exported **{manifest['n_posts']}** labelled posts with every annotator's labels: "
              f"**{manifest['n_rows']}** with a final label ({counts}), {manifest['n_adjudicated']} adjudicated, "
              f"{manifest['n_ties']} ties kept ({manifest['n_without_final_label']} still unresolved) as "
              f"`{manifest['export_id']}` · saved under `{manifest['path']}`")
        return zip_path, md

    def start_retrain(self, force: bool):
        """Start retraining in the background -> (status, the polling timer switched on)."""
        settings = self.ctx.settings
        if not (settings.mvsa_dir / "posts.csv").is_file():
            raise user_error(f"Retraining needs MVSA-Single at {settings.mvsa_dir} (posts.csv + images/): "
                             "set MMSA_MVSA_DIR to its folder")
        with user_errors():  # retrain the model the app serves by default
            base = resolve_choice("", self.ctx.model_choices()).path
        started = self.ctx.retrain.start(db_url=self.ctx.db_url, data_dir=str(settings.data_dir),
                                         base_checkpoint=base, mvsa_dir=str(settings.mvsa_dir), force=bool(force))
        st = self.ctx.retrain.status()
        note = "" if started else " (already running: not started again)"
        return status_markdown(st) + note, gr.Timer(active=True)

    def retrain_status(self):
        """The job's status, its before/after table when done, and the polling timer on while it runs."""
        st = self.ctx.retrain.status()
        rows = before_after_rows(st.report) if st.state == "done" and st.report else []
        return status_markdown(st), rows, gr.Timer(active=st.state == "running")

    def poll_retrain(self):
        """``retrain_status`` plus, once a promoted model is ready, the model menu moved onto it."""
        st = self.ctx.retrain.status()
        menu = gr.skip()
        if st.state == "done" and (st.report or {}).get("promoted"):
            choices = self.ctx.model_choices()
            menu = gr.Dropdown(choices=[(c.label, c.path) for c in choices], value=choices[0].path)
        return (*self.retrain_status(), menu)
