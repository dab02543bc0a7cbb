import csv

import numpy as np
import pytest
from PIL import Image

from mmsa_core import DEFAULT_CHECKPOINT, save_checkpoint
from mmsa_core.data import InputError, load_mvsa
from mmsa_core.predict import main as predict_main
from mmsa_core.predict import predict_csv
from mmsa_core.predictor import Prediction, Predictor

from .conftest import tiny_model


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory):
    path = save_checkpoint(tiny_model("attention_concat"), tmp_path_factory.mktemp("ckpt") / "tiny.pt")
    return Predictor.from_checkpoint(path, device="cpu")


@pytest.fixture(scope="module")
def default_predictor():
    return Predictor.from_checkpoint(device="cpu")


def images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(n)]


def test_prediction_is_plain_values(tiny_predictor):
    p = tiny_predictor.predict(images(1)[0], "happy days #sun")
    assert isinstance(p, Prediction) and p.label in tiny_predictor.labels
    assert set(p.probabilities) == {"negative", "neutral", "positive"}
    assert abs(sum(p.probabilities.values()) - 1) < 1e-5
    assert all(isinstance(v, float) for v in p.probabilities.values())


def test_batch_equals_one_at_a_time(tiny_predictor):
    ims, texts = images(5), ["a", "so sad today", "great!! #win", "x " * 80, "\u00e9t\u00e9 \u0645\u0631\u062d\u0628\u0627"]
    batch = tiny_predictor.predict_batch(ims, texts, batch_size=3)
    for im, t, b in zip(ims, texts, batch):
        one = tiny_predictor.predict(im, t)
        assert one.label == b.label
        assert np.allclose(list(one.probabilities.values()), list(b.probabilities.values()), atol=1e-5)


def test_bad_inputs_get_clear_errors(tiny_predictor):
    with pytest.raises(InputError, match="could not be read"):
        tiny_predictor.predict(b"not an image", "hello")
    with pytest.raises(InputError, match="empty"):
        tiny_predictor.predict(images(1)[0], "   ")


def test_predict_cli_writes_the_contract(tmp_path, mvsa_dir, tiny_predictor):
    posts = tmp_path / "posts.csv"
    rows = [p for p in load_mvsa(mvsa_dir) if p.split == "val"][:6]
    with open(posts, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows([[p.id, p.text] for p in rows])
    out = tmp_path / "preds.csv"
    assert predict_csv(tiny_predictor, posts, mvsa_dir / "images", out, batch_size=4) == 6
    got = list(csv.DictReader(open(out)))
    assert [r["id"] for r in got] == [p.id for p in rows]
    assert list(got[0]) == ["id", "label", "p_negative", "p_neutral", "p_positive"]
    for r in got:
        probs = [float(r[k]) for k in ("p_negative", "p_neutral", "p_positive")]
        assert abs(sum(probs) - 1) < 1e-4 and r["label"] == ["negative", "neutral", "positive"][int(np.argmax(probs))]


def test_predict_cli_reports_bad_csv(tmp_path, mvsa_dir):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("id,text\n1,\xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(SystemExit, match="not UTF-8"):
        predict_main(["--posts", str(bad), "--images", str(mvsa_dir / "images"), "--out", str(tmp_path / "o.csv")])
    missing = tmp_path / "missing.csv"
    missing.write_text("id,text\nno-such-id,hello\n")
    with pytest.raises(SystemExit, match="missing"):
        predict_main(["--posts", str(missing), "--images", str(mvsa_dir / "images"), "--out", str(tmp_path / "o.csv")])


def test_default_checkpoint_loads_offline_and_beats_the_majority_class(default_predictor, mvsa_dir):
    assert DEFAULT_CHECKPOINT.exists()
    val = [p for p in load_mvsa(mvsa_dir) if p.split == "val"][::6]  # 75 posts (trained on: loads and decides)
    preds = default_predictor.predict_batch([p.image for p in val], [p.text for p in val], batch_size=25)
    acc = np.mean([pr.label == p.label for pr, p in zip(preds, val)])
    majority = max(np.mean([p.label == lab for p in val]) for lab in ("negative", "neutral", "positive"))
    assert acc > majority + 0.05, (acc, majority)
    meta = default_predictor.meta
    assert meta["data_hash"] and meta["train_config"]["train_on_val"]  # refit on train + val (so val is in-sample)
    assert [r["seed"] for r in meta["averaged_from"]] == [0, 1, 2]  # the mean of three runs' weights
    assert meta["train_config"]["init_seed"] == 0  # runs that started from the same weights
    assert "val" not in meta["metrics"] and meta["metrics"]["cv"]["runs"] == 5  # its estimate: per fold, 3 runs averaged
    assert 70 < meta["metrics"]["cv"]["accuracy"] < 80 and meta["metrics"]["cv"]["accuracy_sd"] > 0
