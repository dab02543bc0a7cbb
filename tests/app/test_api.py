"""A real gradio_client drives the named endpoints; what the app saves is read back from the database."""
from __future__ import annotations

import math

import pytest
from gradio_client import handle_file

from annotations import current_labels, get_post, history, list_annotators

LABELS = ("negative", "neutral", "positive")


def test_named_endpoints_are_documented(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {name: [p["parameter_name"] for p in ep["parameters"]] for name, ep in api.items()}
    assert params["/predict"] == ["image", "text", "model"]
    assert params["/explain"][:3] == ["image", "text", "model"]
    assert params["/correct"] == ["image", "text", "label", "note", "annotator", "model"]


def test_predict_returns_a_probability_per_label(client, example):
    label, timing = client.predict(handle_file(example[0]), example[1], "", api_name="/predict")
    probs = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(probs) == set(LABELS) and math.isclose(sum(probs.values()), 1.0, abs_tol=1e-4)
    assert label["label"] == max(probs, key=probs.get)
    assert "ms" in timing


def test_explain_returns_heatmap_words_views_and_faithfulness(client, example):
    out = client.predict(handle_file(example[0]), example[1], "", "GradCAM", 0.5,
                         "attribution (integrated gradients)", True, api_name="/explain")
    overlay, words, _, text_only, image_only, fused, _, heatmap_note, image_faith, word_faith, timing, _, details = out
    from PIL import Image

    assert Image.open(overlay).size == Image.open(example[0]).size  # heatmap at the image's own size
    tokens = [w["token"] for w in words if w["class_or_confidence"] is not None]
    assert tokens == example[1].split()
    assert all(-1.0 <= w["class_or_confidence"] <= 1.0 for w in words if w["class_or_confidence"] is not None)
    for view in (text_only, image_only, fused):
        assert {c["label"] for c in view["confidences"]} == set(LABELS)
    assert "ROAD" in image_faith and "comprehensiveness" in word_faith
    assert details["method"] == "GradCAM" and set(details["faithfulness"]) >= {"image_road", "words_sufficiency"}
    assert "explanation" in timing
    assert heatmap_note == "" or "crop" in heatmap_note or "heatmap" in heatmap_note  # its caveats, beside it


def test_correction_is_saved_and_read_back(client, example, read_db):
    message, receipt = client.predict(handle_file(example[0]), example[1], "negative", "sarcasm", "ana", "",
                                      api_name="/correct")
    assert "Saved correction" in message and receipt["label"] == "negative"
    with read_db() as s:
        post = get_post(s, receipt["post_id"])
        rows = history(s, post_id=receipt["post_id"])
        assert current_labels(s, receipt["post_id"]) == {"ana": "negative"}
    assert post["text"] == example[1] and post["image_path"] and post["prediction"]["label"] == receipt["model_label"]
    assert rows[0]["note"] == "sarcasm" and rows[0]["shown_prediction_id"] == receipt["prediction_id"]


def test_annotation_queue_label_skip_undo(client, read_db):
    name = "queue-tester"
    first = client.predict(name, "unseen", "", api_name="/next_post")
    post_id = first[0]
    assert post_id is not None and first[3]["label"] in LABELS  # the model's suggestion
    assert f'data-post="{post_id}"' in first[1] and f"Post #{post_id}" in first[1]  # the card names its post
    assert f"Explaining post #{post_id}" in first[4] or f"for post #{post_id}" in first[4]
    after = client.predict(name, post_id, "positive", "", "unseen", "", api_name="/label_post")
    assert after[8]["post_id"] == post_id and after[0] != post_id  # saved, next post shown
    skipped = client.predict(name, after[0], "unseen", "", api_name="/skip_post")
    assert "Skipped" in skipped[7]
    undone = client.predict(name, "unseen", "", api_name="/undo")
    assert undone[0] == after[0] and "Undid" in undone[7]  # the skipped post is back on screen
    with read_db() as s:
        assert current_labels(s, post_id)[name] == "positive"
        assert [r["kind"] for r in history(s, annotator=name)] == ["retract", "skip", "label"]
        assert name in {a["name"] for a in list_annotators(s)}


def test_dashboard_and_export(client):
    labels, annotators, summary, versions, plots = client.predict("", api_name="/dashboard")
    assert [r[0] for r in labels["data"]] == list(LABELS)
    assert "kappa" in summary and versions["data"]
    zip_path, md = client.predict(api_name="/export")
    assert zip_path.endswith(".zip") and "Exported" in md


def test_retrain_runs_as_a_job_of_its_own_one_at_a_time_and_cancel_stops_it(client, ctx, example, monkeypatch):
    from annotations import list_model_versions

    from .helpers import fake_worker_launcher, wait_for

    monkeypatch.setattr(ctx.retrain, "launcher", fake_worker_launcher)  # a worker process that only reports
    with ctx.sessions() as s:
        versions = list_model_versions(s)
    status, _ = client.predict(False, api_name="/retrain")
    assert "Retraining #" in status
    with pytest.raises(Exception, match="already (queued|running)"):
        client.predict(False, api_name="/retrain")  # a second click says what is running
    wait_for(lambda: (ctx.retrain.latest() or {}).get("progress", 0) > 0.01)  # the worker process reports
    label, _ = client.predict(handle_file(example[0]), example[1], "", api_name="/predict")  # the app serves on
    status, _ = client.predict(api_name="/cancel_retrain")
    assert "cancelling" in status or "cancelled" in status
    assert wait_for(lambda: ctx.retrain.latest()["state"] == "cancelled")
    with ctx.sessions() as s:
        assert list_model_versions(s) == versions  # nothing registered: the current model keeps serving
    with pytest.raises(Exception, match="No retrain is running"):
        client.predict(api_name="/cancel_retrain")


def test_the_documented_client_example_works(client, example):
    image, text = handle_file(example[0]), example[1]
    label, timing = client.predict(image=image, text=text, api_name="/predict")
    overlay, words, *_, explanation = client.predict(image=image, text=text, faithfulness=True, api_name="/explain")
    message, receipt = client.predict(image=image, text=text, label="negative", note="sarcasm", annotator="ana",
                                      api_name="/correct")
    assert label["label"] == explanation["label"] and "image_road" in explanation["faithfulness"]
    assert receipt["annotator"] == "ana" and "Saved" in message
