import json

import numpy as np
import pytest

from mmsa_core import ModelConfig, TrainConfig
from mmsa_core.compare import to_markdown, write_block
from mmsa_core.data import load_mvsa
from mmsa_core.evaluate import compute_metrics, evaluate_checkpoint, format_metrics, main as evaluate_main, plot_confusion
from mmsa_core.train import train

from .conftest import TINY

LABELS = ("negative", "neutral", "positive")


def test_metrics_match_hand_computed_values():
    m = compute_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], LABELS)
    assert abs(m["accuracy"] - 100 * 4 / 6) < 1e-9
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["per_class"]["neutral"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    assert abs(m["macro_f1"] - 100 * np.mean([0.5, 2 / 3, 0.8])) < 1e-9
    assert "confusion matrix" in format_metrics(m)


def test_confusion_png(tmp_path):
    m = compute_metrics([0, 1, 2], [0, 2, 2], LABELS)
    assert plot_confusion(m, tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_train_then_evaluate_cli(tmp_path, mvsa_dir, capsys):
    ckpt = tmp_path / "m.pt"
    _, rec = train(ModelConfig(fusion="add", **TINY), TrainConfig(data_dir=str(mvsa_dir), epochs=2, limit=40,
                                                                  cache_dir=str(tmp_path / "c")), ckpt, progress=False)
    assert [h["epoch"] for h in rec["history"]] == [1, 2] and rec["metrics"]["val"]["epoch"] in (1, 2)
    evaluate_main([str(ckpt), "--split", "val", "--data-dir", str(mvsa_dir), "--cache-dir", str(tmp_path / "c"),
                   "--json", str(tmp_path / "m.json"), "--confusion", str(tmp_path / "cm.png")])
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["n"] == 450 and set(out["per_class"]) == set(LABELS) and out["in_sample"] is False
    assert "weighted F1" in capsys.readouterr().out and (tmp_path / "cm.png").exists()
    # The app's text-only view, scored against MVSA's text labels: other predictions, other targets.
    evaluate_main([str(ckpt), "--split", "val", "--data-dir", str(mvsa_dir), "--cache-dir", str(tmp_path / "c"),
                   "--view", "text", "--target", "text_label", "--json", str(tmp_path / "t.json")])
    text = json.loads((tmp_path / "t.json").read_text())
    val = [p for p in load_mvsa(mvsa_dir) if p.split == "val"]
    assert text["n"] == sum(p.text_label in LABELS for p in val)
    assert [c["support"] for c in text["per_class"].values()] == [
        sum(p.text_label == lab for p in val) for lab in LABELS]
    both = evaluate_checkpoint(str(ckpt), "val", str(mvsa_dir), str(tmp_path / "c"), target="text_label")
    assert both["n"] == text["n"] and both["confusion_matrix"] != text["confusion_matrix"]  # the view changed
    with pytest.raises(ValueError, match="Unknown target"):
        evaluate_checkpoint(str(ckpt), "val", str(mvsa_dir), str(tmp_path / "c"), target="mood")


def test_results_block_is_replaced_in_place(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nintro\n")
    rows = [{"model": "add", "seed": s, "accuracy": 70.0 + s, "weighted_f1": 69.0, "macro_f1": 60.0,
             "neutral_recall": 0.3, "params": 10, "seconds": 1.0} for s in (0, 1)]
    write_block(doc, "frozen", to_markdown(rows))
    write_block(doc, "frozen", to_markdown(rows[:1]))
    text = doc.read_text()
    assert text.startswith("# Results\n\nintro") and text.count("compare:frozen:start") == 1
    assert "| `add` | 70.00 ± 0.00 |" in text and text.count("| `add` |") == 1


@pytest.mark.parametrize("argv, message", [
    (["--set", "aug_contrast_weight=0.5"], "needs augment=True"),  # settings that do not go together
    (["--set", "lr=fast"], "'fast' is not a float"),
    (["--set", "no_such_field=1"], "expected KEY=VALUE"),
    (["--models", "no_such_fusion"], "choose from"),
])
def test_compare_refuses_bad_settings_with_one_line_and_writes_nothing(tmp_path, argv, message):
    from mmsa_core.compare import main as compare_main
    out = tmp_path / "results.md"
    with pytest.raises(SystemExit) as e:
        compare_main(["--cv", "5", "--seeds", "0", "--out", str(out), "--save-dir", str(tmp_path / "runs"),
                      "--data-dir", str(tmp_path / "missing"), *argv])
    assert message in str(e.value.code)
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_cross_validation_scores_every_post_once_and_resumes(tmp_path, mvsa_dir):
    from mmsa_core.compare import cv_markdown, ensemble_scores, mean_sd, run_cv
    from mmsa_core.folds import assign_folds, cv_posts

    tkw = {"data_dir": str(mvsa_dir), "limit": 60, "epochs": 1, "cache_dir": str(tmp_path / "c"), "batch_size": 16}
    rows = run_cv(["concat"], [0, 1], TINY, tkw, k=3, save_dir=tmp_path / "cv")
    posts = cv_posts(mvsa_dir, 60)
    folds = assign_folds(posts, 3, 0)
    for seed in (0, 1):
        held = [i for r in rows if r["seed"] == seed for i in r["ids"]]
        assert sorted(held) == sorted(p.id for p in posts)  # each post held out exactly once per seed
    for r in rows:  # a fold's held-out posts are the ones assigned to it, and no training ran on val metrics
        assert set(r["ids"]) == {p.id for p, f in zip(posts, folds) if f == r["fold"]}
        assert r["train_config"]["early_stopping"] is False and len(r["history"]) == 1
    again = run_cv(["concat"], [0, 1], TINY, tkw, k=3, save_dir=tmp_path / "cv")  # read back, not retrained
    assert [r["probs"] for r in again] == [r["probs"] for r in rows]
    ens = ensemble_scores(rows)
    assert len(ens) == 3 and all(0 <= e["accuracy"] <= 100 for e in ens)
    table = cv_markdown(rows)
    assert "3 folds × 2 seeds" in table and "mean of the 2 seeds" in table
    diffs = [e["accuracy"] - np.mean([r["accuracy"] for r in rows if r["fold"] == e["fold"]]) for e in ens]
    assert f"accuracy {mean_sd(diffs)} (higher on {sum(d > 0 for d in diffs)} of 3 folds)" in table  # paired by fold


def test_a_learning_curve_trains_on_a_stratified_share_and_scores_the_whole_fold(tmp_path, mvsa_dir):
    from collections import Counter

    import numpy as np
    import pytest

    from mmsa_core.compare import cv_markdown, mean_sd, paired_markdown, run_cv, training_share
    from mmsa_core.folds import cv_posts

    posts = cv_posts(mvsa_dir)
    half = training_share(posts, 0.5, seed=3)
    assert len(half) == len(posts) // 2 and {p.id for p in half} < {p.id for p in posts}
    share = {k: n / len(half) for k, n in Counter(p.label for p in half).items()}
    assert all(abs(share[k] - n / len(posts)) < 0.01 for k, n in Counter(p.label for p in posts).items())
    assert [p.id for p in training_share(posts, 0.5, seed=3)] == [p.id for p in half]  # a fold's share is fixed
    assert training_share(posts, 1.0, seed=3) == posts

    tkw = {"data_dir": str(mvsa_dir), "limit": 60, "epochs": 1, "cache_dir": str(tmp_path / "c"), "batch_size": 16}
    whole = run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "all")
    some = run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "half", train_fraction=0.5)
    for w, s in zip(whole, some):
        assert s["ids"] == w["ids"]  # the held-out fold is scored whole
        assert s["n_train"] == w["n_train"] // 2 and s["train_fraction"] == 0.5
    assert "trained on 50% of the other folds" in cv_markdown(some)
    # Paired rows: only the (fold, seed) runs every folder has, each run against the first folder's same run.
    run_cv(["concat"], [1], TINY, tkw, k=3, save_dir=tmp_path / "all")  # seed 1 in one folder only
    table = paired_markdown([tmp_path / "all", tmp_path / "half"])
    assert "3 runs in every folder: folds [0, 1, 2], seeds [0]." in table
    row = next(line for line in table.splitlines() if "half" in line).split(" | ")
    assert row[1] == "as the first row but trained on 50% of the other folds"
    assert row[2] == str(int(np.median([s["n_train"] for s in some])))
    assert row[4] == mean_sd([s["accuracy"] - w["accuracy"] for s, w in zip(some, whole)])
    assert "Least-squares" not in table  # two shares are not a curve
    few = run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "few", train_fraction=0.25)
    table = paired_markdown([tmp_path / "all", tmp_path / "half", tmp_path / "few"])
    runs = whole + some + few
    slope = np.polyfit(np.log2([r["n_train"] for r in runs]), [r["accuracy"] for r in runs], 1)[0]
    assert "Least-squares line over the 9 runs" in table and f"{slope:.2f} × log2(training posts)" in table
    with pytest.raises(SystemExit, match="share of 0.5"):  # a resumed folder must hold the same share
        run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "half")
    with pytest.raises(SystemExit, match="must be in"):
        run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "x", train_fraction=0)


def test_folds_are_stratified_and_keep_duplicates_together(mvsa_dir):
    from collections import Counter

    from mmsa_core.folds import assign_folds, content_key, cv_posts

    posts = cv_posts(mvsa_dir)
    folds = assign_folds(posts, 5, 0)
    sizes = Counter(folds.tolist())
    assert sorted(sizes) == [0, 1, 2, 3, 4] and max(sizes.values()) - min(sizes.values()) <= 5
    neutral = [sum(p.label == "neutral" for p, f in zip(posts, folds) if f == k) for k in range(5)]
    assert max(neutral) - min(neutral) <= 3
    by_key, n_posts = {}, Counter()
    for p, f in zip(posts, folds):
        by_key.setdefault(content_key(p), set()).add(int(f))
        n_posts[content_key(p)] += 1
    assert sum(n > 1 for n in n_posts.values()) >= 10  # MVSA has exact duplicates ...
    assert all(len(v) == 1 for v in by_key.values())  # ... and each group sits in one fold


def test_cross_validated_distillation_learns_from_each_folds_own_teachers(tmp_path, mvsa_dir):
    import numpy as np
    import pytest

    from mmsa_core.compare import run_cv

    def kl(p, q):  # mean KL(p || q) over posts
        p, q = np.clip(np.array(p), 1e-8, 1), np.clip(np.array(q), 1e-8, 1)
        return float((p * (np.log(p) - np.log(q))).sum(1).mean())

    tkw = {"data_dir": str(mvsa_dir), "limit": 48, "epochs": 3, "cache_dir": str(tmp_path / "c"), "batch_size": 16}
    with pytest.raises(SystemExit, match="No checkpoint of fold 0"):  # no teachers yet: a clear message
        run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "s", teacher_dir=tmp_path / "t")
    teachers = run_cv(["concat"], [7], TINY, {**tkw, "lr": 1e-2}, k=3, save_dir=tmp_path / "t", keep_checkpoints=True)
    plain = run_cv(["concat"], [0], TINY, tkw, k=3, save_dir=tmp_path / "p")
    student = run_cv(["concat"], [0], TINY, {**tkw, "distill_weight": 5.0}, k=3, save_dir=tmp_path / "s",
                     teacher_dir=tmp_path / "t")
    assert [r["teachers"] for r in student] == [[f"concat-s7-f{k}.pt"] for k in range(3)]  # the fold's own
    t = [p for r in teachers for p in r["probs"]]
    assert kl(t, [p for r in student for p in r["probs"]]) < kl(t, [p for r in plain for p in r["probs"]])
