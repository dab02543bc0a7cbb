"""The app's glue without a server: settings, the model menu, formatting, the retraining job."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from webapp.analyze import conflict_score
from webapp.formatting import highlight_words, word_view
from webapp.hotkeys import HOTKEYS, HOTKEYS_JS
from webapp.models import ModelUnavailable, list_model_choices, resolve_choice
from webapp.retrain_job import before_after_rows, status_html
from webapp.settings import AppSettings, storage_warning


def test_settings_from_env_and_the_storage_banner(tmp_path):
    local = AppSettings.from_env({"MMSA_DATA_DIR": str(tmp_path)})
    assert local.data_dir == tmp_path and not local.on_space and storage_warning(local) is None
    space = AppSettings.from_env({"SPACE_ID": "team/mmsa", "MMSA_DATA_DIR": str(tmp_path)})
    assert "not persistent" in storage_warning(space)
    external = AppSettings.from_env({"SPACE_ID": "team/mmsa", "MMSA_DB_URL": "postgresql://db/mmsa"})
    assert "external database" in storage_warning(external)


def test_model_menu_lists_the_default_first_and_serves_only_listed_files(tmp_path, checkpoint):
    (tmp_path / "models").mkdir()
    retrained = tmp_path / "models" / "retrain-1.pt"
    retrained.write_bytes(checkpoint.read_bytes())
    versions = [{"name": "retrain-1", "checkpoint_path": str(retrained), "is_default": True}]
    choices = list_model_choices(tmp_path, versions)
    assert choices[0].name == "retrain-1" and "default" in choices[0].label
    assert len({c.path for c in choices}) == len(choices)  # each file once
    assert resolve_choice("", choices) == choices[0] and resolve_choice("retrain-1", choices) == choices[0]
    with pytest.raises(ModelUnavailable, match="Unknown model"):
        resolve_choice("/etc/passwd", choices)
    override = list_model_choices(tmp_path, versions, override=str(checkpoint))
    assert override[0].name == "retrain-1"  # a promoted retrain wins over MMSA_CHECKPOINT
    assert override[1].path == str(checkpoint.resolve())
    versions[0]["is_default"] = False
    assert list_model_choices(tmp_path, versions, override=str(checkpoint))[0].path == str(checkpoint.resolve())
    with pytest.raises(ModelUnavailable, match="No model checkpoint found"):
        resolve_choice("", [])


def test_word_highlights_are_scaled_and_spaced():
    pairs = [("good", 0.5), ("bad", -1.0), ("meh", 0.0)]
    out = highlight_words(pairs, signed=True)
    assert out == [("good", 0.5), (" ", None), ("bad", -1.0), (" ", None), ("meh", 0.0)]
    assert [v for _, v in highlight_words(pairs, signed=False) if v is not None] == [0.5, 1.0, 0.0]
    assert word_view({"word_attention": None, "word_scores": pairs}, "attention (fusion head)") == []


def test_conflict_score_is_the_chance_of_opposite_views():
    agree = {"text": {"negative": 0.0, "neutral": 0.0, "positive": 1.0},
             "image": {"negative": 0.0, "neutral": 0.0, "positive": 1.0}}
    clash = {"text": {"negative": 1.0, "neutral": 0.0, "positive": 0.0},
             "image": {"negative": 0.0, "neutral": 0.0, "positive": 1.0}}
    assert conflict_score(agree) == 0.0 and conflict_score(clash) == 1.0


def test_hotkeys_cover_labels_skip_undo_next_and_ignore_text_fields():
    assert set(HOTKEYS) == {"1", "2", "3", "s", "u", "n", "enter"} and HOTKEYS["enter"] == HOTKEYS["n"]
    assert "TEXTAREA" in HOTKEYS_JS and "INPUT" in HOTKEYS_JS and "offsetParent" in HOTKEYS_JS
    assert '"Escape"' in HOTKEYS_JS and ".blur()" in HOTKEYS_JS  # Esc leaves a text box


def test_retrain_status_shows_progress_eta_and_outcome_escaped():
    running = {"job_id": 7, "state": "running", "progress": 0.42, "stage": "training member 2/3 <b>",
               "eta_seconds": 150.0, "requested_by": "ana<script>", "cancel_requested": False}
    shown = status_html(running)
    assert 'value="42.0"' in shown and "42%" in shown and "about 2 min left" in shown
    assert "<script>" not in shown and "&lt;b&gt;" in shown  # stages and names are text
    report = {"old": {"audit": {"n": 20, "accuracy": 70.0, "weighted_f1": 69.0}, "val": None},
              "new": {"audit": {"n": 20, "accuracy": 75.0, "weighted_f1": 68.5}, "val": None}, "promoted": False,
              "model_version": "retrain-x", "reason": "worse on audit", "data": "12 database labels",
              "audit_impact": {"fixed": 2, "regressed": 1, "still_wrong": 3, "n": 20}, "seconds": 90.0}
    done = {**running, "state": "done", "report": report}
    assert "kept the current model" in status_html(done) and "worse on audit" in status_html(done)
    assert before_after_rows(report) == [
        ["audit set (database labels, never trained on) (20 posts)", "accuracy (%)", 70.0, 75.0, "+5.000"],
        ["audit set (database labels, never trained on) (20 posts)", "weighted F1 (%)", 69.0, 68.5, "-0.500"]]
    assert "failed: no labels" in status_html({**running, "state": "failed", "error": "no labels"})
    assert "keeps serving" in status_html({**running, "state": "cancelled"})


def test_dashboard_poll_moves_the_model_menu_to_a_promoted_model(tmp_path, checkpoint):
    import gradio as gr

    from annotations.jobs import JobReporter, start_job
    from webapp.context import AppContext
    from webapp.dashboard import DashboardHandlers

    ctx = AppContext(AppSettings(data_dir=tmp_path / "data", db_url=None, checkpoint=str(checkpoint),
                                 mvsa_dir=Path("/nonexistent/mvsa"), space_id=None))

    report = {"old": {"val": {"n": 450, "accuracy": 70.0}}, "new": {"val": {"n": 450, "accuracy": 71.0}},
              "promoted": True, "model_version": "retrain-y", "reason": "not worse on val"}
    with ctx.sessions.begin() as s:
        job = start_job(s, "retrain", "root")
    worker = JobReporter(ctx.sessions, job["job_id"], heartbeat_s=3600)  # a worker, in-process
    worker(0.3, "training")
    html, rows, timer, menu = DashboardHandlers(ctx).poll_retrain()
    assert "30%" in html and rows == [] and timer.active and menu == gr.skip()
    worker.finish("done", report=report)
    html, rows, timer, menu = DashboardHandlers(ctx).poll_retrain()
    assert rows == [["MVSA-Single val (450 posts)", "accuracy (%)", 70.0, 71.0, "+1.000"]] and not timer.active
    assert isinstance(menu, gr.Dropdown) and menu.value == ctx.model_choices()[0].path


def test_assets_examples_exist_and_are_cited():
    from webapp.examples import ASSETS, load_examples

    examples = load_examples()
    assert 4 <= len(examples) <= 6 and all(Path(e.image).is_file() for e in examples)
    readme = (ASSETS / "README.md").read_text()
    assert all(e.id in readme for e in examples) and "Niu" in readme


def test_zero_gpu_decorator_wraps_the_model_handlers(monkeypatch, ctx):
    import sys
    import types

    wrapped = []

    def gpu(fn):
        wrapped.append(fn.__name__)
        return fn

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    from webapp.analyze import AnalyzeHandlers
    from webapp.annotate import AnnotateHandlers
    from webapp.models import gpu_decorator

    AnalyzeHandlers(ctx, gpu_decorator())
    AnnotateHandlers(ctx, gpu_decorator())
    assert wrapped == ["predict", "explain", "faithfulness", "_predict", "_explain_post"]


def test_faithfulness_comes_in_a_second_pass(ctx, example):
    from webapp.analyze import AnalyzeHandlers

    analyze = AnalyzeHandlers(ctx)
    *_, timing, notes, summary, state = analyze.explain(*example, "", "GradCAM", 0.5, "attribution", False)
    assert summary["faithfulness"] == {} and "faithfulness pass" not in timing
    image_md, word_md, summary, timing = analyze.faithfulness(True, state)
    assert "ROAD" in image_md and "comprehensiveness" in word_md and "faithfulness pass" in timing
    assert {"image_road", "words_comprehensiveness"} <= set(summary["faithfulness"])
    assert "off" in analyze.faithfulness(False, state)[0]


def test_on_a_space_the_app_offers_sign_in_and_warns_about_storage(tmp_path, checkpoint, monkeypatch):
    import gradio as gr

    monkeypatch.setenv("SPACE_ID", "team/mmsa")  # what a Space sets; Gradio then serves the real sign-in routes
    monkeypatch.setenv("SYSTEM", "spaces")
    import gradio.oauth

    for var in ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"):
        monkeypatch.setenv(var, "test")  # what `hf_oauth: true` gives a Space
        monkeypatch.setattr(gradio.oauth, var, "test")  # gradio read them at import

    import app
    from webapp.context import AppContext

    settings = AppSettings(data_dir=tmp_path / "data", db_url=None, checkpoint=str(checkpoint),
                           mvsa_dir=tmp_path, space_id="team/mmsa")
    ctx = AppContext(settings)
    demo = app.build_demo(ctx)
    blocks = list(demo.blocks.values())
    from webapp.auth import sign_in_available

    assert any(isinstance(b, gr.LoginButton) for b in blocks) == sign_in_available(True)  # needs gradio[oauth]
    banner = next(b for b in blocks if getattr(b, "elem_id", None) == "storage-banner")
    assert not banner.visible and "not persistent" in banner.value  # shown to admins on load
    assert not (tmp_path / "data").exists()  # still nothing written


def test_explanations_take_turns_predictions_do_not():
    from concurrent.futures import ThreadPoolExecutor

    from webapp.models import ServedModel

    class Fake:
        labels = ("negative", "neutral", "positive")
        running = {"explain": 0, "predict": 0}
        most = {"explain": 0, "predict": 0}
        lock = threading.Lock()

        def _run(self, kind):
            with self.lock:
                self.running[kind] += 1
                self.most[kind] = max(self.most[kind], self.running[kind])
            time.sleep(0.05)
            with self.lock:
                self.running[kind] -= 1
            return kind

        def explain(self, *a, **k):
            return self._run("explain")

        def predict(self, *a, **k):
            return self._run("predict")

    fake = Fake()
    served = ServedModel(fake)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: served.explain() if i % 2 else served.predict(), range(16)))
    assert fake.most["explain"] == 1 and fake.most["predict"] > 1
    assert served.labels == Fake.labels  # everything else passes through


def test_the_storage_banner_is_for_admins_and_the_kept_name_and_queue_come_back(tmp_path, checkpoint):
    from types import SimpleNamespace

    import gradio as gr

    from webapp.auth import SessionHandlers
    from webapp.context import AppContext
    from webapp.identity import AccessControl

    settings = AppSettings(data_dir=tmp_path / "data", db_url=None, checkpoint=str(checkpoint), mvsa_dir=tmp_path,
                           space_id="team/mmsa")
    ctx = AppContext(settings, seed=False)
    ctx._access = AccessControl("space", lambda: ctx.sessions, admins="boss")
    on_load = SessionHandlers(ctx).on_load
    name, _, banner, strategy = on_load("mallory", "unseen", profile=SimpleNamespace(username="boss"))
    assert banner.visible and name.value == "boss" and strategy == "unseen"  # the server's name, not the kept one
    for profile in (SimpleNamespace(username="ana"), None):  # an annotator, an anonymous visitor
        assert not on_load("", "unseen", profile=profile)[2].visible
    ctx._access = AccessControl("open", lambda: ctx.sessions)
    name, _, _, strategy = on_load("ana", "conflict")
    assert name.value == "ana" and strategy == "conflict"

    name, _, _, strategy = on_load('<img src=x onerror="1">', "DROP TABLE")  # the browser's storage is input too
    assert "value" not in name.constructor_args and strategy == gr.skip()  # neither is used (nor blanked out)


def test_model_versions_show_val_else_the_audit_set_else_cross_validation():
    from webapp.dashboard import VERSION_HEADERS, confusion_strip, held_out, version_rows

    m = lambda acc: {"n": 10, "accuracy": acc, "weighted_f1": acc - 1, "macro_f1": acc - 2,  # noqa: E731
                     "neutral_recall": 0.5, "confusion_matrix": [[3, 0, 0], [0, 3, 0], [1, 0, 3]],
                     "labels": ["negative", "neutral", "positive"]}
    versions = [{"name": n, "is_default": False, "created_at": "2026-12-06T05:00:00", "trained_on_export_id": None,
                 "metrics": metrics} for n, metrics in [
        ("retrained", {"audit": m(70.0), "val": m(74.0)}),
        ("retrained-refit", {"audit": m(71.0), "val": None}),  # a retrain of a model refit on train+val
        ("default (served)", {"cv": m(75.0)}),  # the refit default: its estimate is cross-validation
        ("bare", None)]]
    rows = version_rows(versions)
    at = VERSION_HEADERS.index
    assert [(r[at("judged on")], r[at("accuracy")]) for r in rows] == [
        ("MVSA val", "74.00"), ("audit set", "71.00"), ("cross-validation", "75.00"), ("", "—")]
    assert all(len(r) == len(VERSION_HEADERS) for r in rows)
    judged = [(v["name"], *held_out(v["metrics"])) for v in versions if held_out(v["metrics"])]
    assert confusion_strip(judged).width > 0 and confusion_strip([]) is None
