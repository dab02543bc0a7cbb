import json

import numpy as np
import pytest
import torch

from mmsa_core import ModelConfig, MultimodalClassifier
from mmsa_core.calibrate import biased_argmax, choose_bias, main as calibrate_main, nested
from mmsa_core.checkpoint import load_model, read_checkpoint, save_checkpoint

from .conftest import TINY


def under_predicted_neutral(n: int, rng: np.random.Generator):
    """Labels and probabilities of a model that ranks neutral posts well but rarely picks neutral."""
    y = rng.choice(3, size=n, p=[0.3, 0.15, 0.55])
    logits = rng.normal(0, 1, size=(n, 3))
    logits[np.arange(n), y] += 1.5
    logits[:, 1] -= 1.2  # the rare class is pushed down, as cross-entropy on a skewed set does
    p = np.exp(logits)
    return y, p / p.sum(1, keepdims=True)


def saved_cv_runs(folder, n: int, seed: int):
    """Three folds' held-out probabilities, as ``compare --cv`` saves them, under ``folder``."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for fold in range(3):
        y, p = under_predicted_neutral(n, rng)
        (folder / f"concat-s0-f{fold}.json").write_text(json.dumps(
            {"model": "concat", "seed": 0, "fold": fold, "y": y.tolist(), "probs": p.tolist()}))
    return folder


def test_the_bias_chosen_by_cv_lifts_the_rare_class_on_held_out_folds():
    rng = np.random.default_rng(0)
    runs = []
    for fold in range(4):
        y, p = under_predicted_neutral(400, rng)
        runs.append({"fold": fold, "seed": 0, "y": y, "probs": p})
    plain, biased, chosen = nested(runs, 1, "macro_f1")
    assert all(0.5 <= b <= 2.0 for b in chosen)  # each fold's bias comes from the other folds only
    assert np.mean([s["macro_f1"] for s in biased]) > np.mean([s["macro_f1"] for s in plain]) + 1.5
    assert np.mean([s["neutral_recall"] for s in biased]) > np.mean([s["neutral_recall"] for s in plain])
    y, p = under_predicted_neutral(200, rng)
    assert (biased_argmax(p, 1, 0.0) == p.argmax(1)).all()
    assert choose_bias(y, np.tile([0.1, 0.1, 0.8], (200, 1)), 1, "accuracy") == 0.0  # ties: no change
    with pytest.raises(ValueError, match="two folds"):
        nested(runs[:1], 1, "macro_f1")


def test_the_bias_travels_with_the_checkpoint_and_applies_at_inference_only(tmp_path, mvsa_dir, monkeypatch):
    import shutil

    from mmsa_core.evaluate import evaluate_checkpoint

    monkeypatch.setenv("MMSA_CACHE_DIR", str(tmp_path / "cache"))
    model = MultimodalClassifier(ModelConfig(fusion="concat", **TINY))
    ckpt = save_checkpoint(model, tmp_path / "m.pt")
    shutil.copy(ckpt, tmp_path / "plain.pt")
    cv = saved_cv_runs(tmp_path / "cv", 300, seed=1)
    calibrate_main([str(cv), "--checkpoint", str(ckpt), "--out", str(tmp_path / "r.md"), "--data-dir", str(mvsa_dir)])
    stored = read_checkpoint(ckpt)
    bias = stored["config"]["logit_bias"]
    assert bias[0] == bias[2] == 0.0 and bias[1] > 0 and stored["calibration"]["bias"] == bias[1]
    # the stored val metrics are the model's as it now decides: more posts called neutral than without the bias
    before = evaluate_checkpoint(str(tmp_path / "plain.pt"), "val", str(mvsa_dir))
    after = stored["metrics"]["val"]
    assert after["n"] == before["n"] == 450
    neutral = lambda m: sum(row[1] for row in m["confusion_matrix"])  # noqa: E731
    assert neutral(after) > neutral(before)
    assert "nested" in (tmp_path / "r.md").read_text()
    assert stored["metrics"]["cv"]["runs"] == 3 and stored["metrics"]["cv"]["n"] == 900  # the nested estimate too

    biased, _ = load_model(ckpt)
    plain, _ = load_model(ckpt, logit_bias=())
    tok = biased.text_encoder.tokenize(["so happy today #sun", "worst day ever"])
    pixels, ids, mask = torch.rand(2, 3, 64, 64), tok["input_ids"], tok["attention_mask"]
    with torch.no_grad():
        diff = biased(pixels, ids, mask).logits - plain(pixels, ids, mask).logits
        assert torch.allclose(diff, torch.tensor([bias, bias]), atol=1e-5)
        biased.train(), plain.train()
        torch.manual_seed(0)
        a = biased(pixels, ids, mask).logits
        torch.manual_seed(0)
        assert torch.allclose(a, plain(pixels, ids, mask).logits)  # training learns without it
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        MultimodalClassifier(ModelConfig(fusion="concat", logit_bias=(0.0, 1.0), **TINY))


def test_a_model_refit_on_val_stores_the_nested_estimate_and_no_val_figures(tmp_path, mvsa_dir, capsys):
    model = MultimodalClassifier(ModelConfig(fusion="concat", **TINY))
    ckpt = save_checkpoint(model, tmp_path / "refit.pt", train_config={"train_on_val": True},
                           metrics={"val": {"accuracy": 99.0}})
    cv = saved_cv_runs(tmp_path / "cv", 200, seed=2)
    calibrate_main([str(cv), "--checkpoint", str(ckpt), "--data-dir", str(mvsa_dir)])
    stored = read_checkpoint(ckpt)
    assert "val" not in stored["metrics"]  # in-sample: dropped, not re-scored
    est = stored["metrics"]["cv"]
    assert est["runs"] == 3 and est["n"] == 600 and np.sum(est["confusion_matrix"]) == 600
    assert est["accuracy"] == pytest.approx(stored["calibration"]["nested"]["accuracy"])
    assert est["accuracy_sd"] > 0 and "in-sample" in capsys.readouterr().out


def test_a_bias_that_does_not_help_held_out_folds_is_not_kept(tmp_path, mvsa_dir):
    """Folds that disagree (one under-predicts neutral, the other over-predicts it): each fold's bias, chosen on
    the other, hurts it, so the checkpoint keeps argmax and stores argmax's estimate."""
    folder = tmp_path / "cv"
    folder.mkdir()
    rng = np.random.default_rng(3)
    argmax_acc = []
    for fold, push in enumerate((-1.5, 1.5)):
        y = rng.choice(3, size=400, p=[0.3, 0.15, 0.55])
        logits = rng.normal(0, 1, size=(400, 3))
        logits[np.arange(400), y] += 1.5
        logits[:, 1] += push
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        argmax_acc.append((p.argmax(1) == y).mean() * 100)
        (folder / f"concat-s0-f{fold}.json").write_text(json.dumps(
            {"model": "concat", "seed": 0, "fold": fold, "y": y.tolist(), "probs": p.tolist()}))
    model = MultimodalClassifier(ModelConfig(fusion="concat", **TINY))
    ckpt = save_checkpoint(model, tmp_path / "m.pt", train_config={"train_on_val": True})
    calibrate_main([str(folder), "--checkpoint", str(ckpt), "--out", str(tmp_path / "r.md"),
                    "--data-dir", str(mvsa_dir)])
    stored = read_checkpoint(ckpt)
    assert stored["config"]["logit_bias"] == [0.0, 0.0, 0.0] and stored["calibration"]["kept"] is False
    assert stored["metrics"]["cv"]["accuracy"] == pytest.approx(np.mean(argmax_acc))
    assert "argmax" in stored["metrics"]["cv"]["source"]
    assert "does not help" in (tmp_path / "r.md").read_text()


def test_average_seeds_scores_the_seeds_ensemble_one_run_per_fold(tmp_path, mvsa_dir):
    """Two seeds per fold, each a noisy view of the same posts: the estimate stored for an ensemble of the seeds
    is over one run per fold, scored on the mean of the seeds' probabilities."""
    folder = tmp_path / "cv"
    folder.mkdir()
    rng = np.random.default_rng(4)
    mean_acc = []
    for fold in range(3):
        y, p = under_predicted_neutral(300, rng)
        seeds = []
        for seed in range(2):
            q = p * np.exp(rng.normal(0, 0.8, size=p.shape))
            seeds.append(q / q.sum(1, keepdims=True))
            (folder / f"concat-s{seed}-f{fold}.json").write_text(json.dumps(
                {"model": "concat", "seed": seed, "fold": fold, "ids": [f"{fold}-{i}" for i in range(300)],
                 "y": y.tolist(), "probs": seeds[-1].tolist()}))
        mean_acc.append((np.mean(seeds, 0).argmax(1) == y).mean() * 100)
    model = MultimodalClassifier(ModelConfig(fusion="concat", **TINY))
    ckpt = save_checkpoint(model, tmp_path / "m.pt", train_config={"train_on_val": True})
    calibrate_main([str(folder), "--average-seeds", "--checkpoint", str(ckpt), "--out", str(tmp_path / "r.md"),
                    "--data-dir", str(mvsa_dir)])
    stored = read_checkpoint(ckpt)
    est, record = stored["metrics"]["cv"], stored["calibration"]
    assert est["runs"] == 3 and est["n"] == 900 and record["average_seeds"] is True
    assert record["argmax"]["accuracy"] == pytest.approx(np.mean(mean_acc))  # the ensemble's, not a seed's mean
    assert "seeds averaged" in est["source"] and "mean of 2 seeds" in (tmp_path / "r.md").read_text()
