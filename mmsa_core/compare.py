"""Compare models: k-fold cross-validation over train+val (the honest way), or seeds on val.

    python -m mmsa_core.compare --cv 5 --models attention_concat --seeds 0 --block cv-frozen \\
        --save-dir runs/cv/frozen                                   # mean ± sd over folds (and seeds)
    python -m mmsa_core.compare --cv 5 --models attention_concat --set text_trainable_layers=-1 \\
        --set layer_decay=0.9 --epochs 3 --block cv-text6 --save-dir runs/cv/text6
    python -m mmsa_core.compare --cv-ensemble runs/cv/frozen runs/cv/text6 --block cv-ensembles
    python -m mmsa_core.compare --cv-paired runs/cv/frozen runs/cv/text6 --block cv-paired   # same runs, side by side
    python -m mmsa_core.compare --cv 5 --models attention_concat --train-fraction 0.5 \\
        --save-dir runs/cv/half --block cv-half                      # a learning curve's point
    python -m mmsa_core.compare --seeds 0 1 2 --out docs/results.md   # the older val table (early stopping on val)

With ``--cv`` every fold trains a fixed number of epochs (no early stopping: the held-out fold is never
used to pick anything) and its held-out probabilities are saved beside the fold's record, so
``--cv-ensemble`` can score any average of runs on the same folds without training again, and
``--cv-paired`` can set folders side by side on the folds and seeds they share. ``--set
KEY=VALUE`` sets any ``ModelConfig`` or ``TrainConfig`` field. Tables replace the block between
``<!-- compare:NAME:start -->`` and ``<!-- compare:NAME:end -->`` in the output file.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import time
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model, read_checkpoint
from .config import LABELS, ModelConfig, TrainConfig
from .data import Post
from .evaluate import compute_metrics
from .features import MvsaFeatures, feature_cut, predict_probs
from .folds import assign_folds, cv_posts
from .fusion import list_fusions
from .model import MultimodalClassifier
from .train import seed_everything, train, train_on_posts

log = logging.getLogger(__name__)
METRICS = ("accuracy", "weighted_f1", "macro_f1", "neutral_recall")


def metric_row(m: dict) -> dict:
    return {"accuracy": m["accuracy"], "weighted_f1": m["weighted_f1"], "macro_f1": m["macro_f1"],
            "neutral_recall": m["per_class"]["neutral"]["recall"]}


def run(models: list[str], seeds: list[int], mcfg_kw: dict, tcfg_kw: dict, save_dir: str | None = None) -> list[dict]:
    """Seeds on val (early stopping on val): the table that val chose from."""
    rows = []
    for name in models:
        for seed in seeds:
            kw = _model_kw(name, mcfg_kw)
            out = Path(save_dir) / f"{name}-s{seed}.pt" if save_dir else None
            if out is not None and out.exists():  # resume: a run already saved counts as done
                rec = read_checkpoint(out)
            else:
                _, rec = train(ModelConfig(fusion=name, **kw), TrainConfig(seed=seed, **tcfg_kw), out, progress=False)
            v = rec["metrics"]["val"]
            rows.append({"model": name, "seed": seed, "epochs_run": len(rec["history"]),
                         "max_epochs": rec["train_config"]["epochs"], **metric_row(v),
                         "epoch": v["epoch"], "params": rec["trainable_params"], "seconds": rec["train_seconds"]})
            log.info("%s seed %d: acc %.2f wF1 %.2f", name, seed, v["accuracy"], v["weighted_f1"])
    return rows


def _model_kw(name: str, mcfg_kw: dict) -> dict:
    kw = dict(mcfg_kw)
    if name == "mscmf" and "mlm_weight" not in kw:
        kw["mlm_weight"] = 0.1  # the seed paper trains mscmf with its auxiliary loss
    return kw


def run_cv(models: list[str], seeds: list[int], mcfg_kw: dict, tcfg_kw: dict, k: int = 5, fold_seed: int = 0,
           save_dir: str | Path = "runs/cv", keep_checkpoints: bool = False, folds: list[int] | None = None,
           teacher_dir: str | Path | None = None, train_fraction: float = 1.0) -> list[dict]:
    """Every (model, seed, fold): train on the other folds for a fixed number of epochs, score the held-out
    fold. Each run's record (metrics, learning curve, held-out probabilities) is saved as
    ``<save_dir>/<model>-s<seed>-f<fold>.json``; runs already saved are read back (resume).
    ``train_fraction`` < 1: train on that stratified share of the other folds only (a point of a learning
    curve: how accuracy grows with labelled posts); the held-out fold is still scored whole.
    ``teacher_dir``: distil each fold from that fold's checkpoints there (``--keep-checkpoints`` of an
    earlier run), averaged, so no teacher has seen the fold it is scored on."""
    if not 0 < train_fraction <= 1:
        raise SystemExit(f"--train-fraction must be in (0, 1], got {train_fraction}")
    tcfg_kw = {**tcfg_kw, "early_stopping": False}
    posts = cv_posts(tcfg_kw.get("data_dir", TrainConfig.data_dir), tcfg_kw.get("limit", 0))
    assignment = assign_folds(posts, k, fold_seed)
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    rows, lookups = [], {}
    for name in models:
        for seed in seeds:
            for fold in folds if folds is not None else range(k):
                path = save_dir / f"{name}-s{seed}-f{fold}.json"
                if path.exists():
                    rec = json.loads(path.read_text())
                    if rec.get("train_fraction", 1.0) != train_fraction:
                        raise SystemExit(f"{path} was trained on a share of {rec.get('train_fraction', 1.0)} of "
                                         f"its folds, not {train_fraction}: use another --save-dir")
                else:
                    teachers = fold_teachers(teacher_dir, fold) if teacher_dir else []
                    rec = _cv_fold(name, seed, fold, posts, assignment, _model_kw(name, mcfg_kw), tcfg_kw, lookups,
                                   save_dir if keep_checkpoints else None, teachers, train_fraction)
                    rec["fold_seed"], rec["k"] = fold_seed, k
                    path.write_text(json.dumps(rec))
                rows.append(rec)
                log.info("%s seed %d fold %d: acc %.2f wF1 %.2f (%.0fs)", name, seed, fold, rec["accuracy"],
                         rec["weighted_f1"], rec["seconds"])
    return rows


def fold_teachers(teacher_dir: str | Path, fold: int) -> list[Path]:
    """The checkpoints of ``fold`` kept in ``teacher_dir``; fails when there are none."""
    found = sorted(Path(teacher_dir).glob(f"*-s*-f{fold}.pt"))
    if not found:
        raise SystemExit(f"No checkpoint of fold {fold} in {teacher_dir}: make them with --cv --keep-checkpoints "
                         f"--save-dir {teacher_dir}")
    return found


def training_share(posts: list[Post], fraction: float, seed: int) -> list[Post]:
    """A ``fraction`` of ``posts``, stratified by label (scikit-learn's train_test_split); all when 1."""
    from sklearn.model_selection import train_test_split

    if fraction >= 1:
        return posts
    kept, _ = train_test_split(posts, train_size=fraction, stratify=[p.label for p in posts], random_state=seed)
    return kept


def _cv_fold(name, seed, fold, posts, assignment, mkw, tkw, lookups, ckpt_dir, teachers=(),
             train_fraction: float = 1.0) -> dict:
    tcfg = TrainConfig(seed=seed, **tkw)
    seed_everything(tcfg.model_seed)
    model = MultimodalClassifier(ModelConfig(fusion=name, **mkw))
    cut = feature_cut(model)
    if cut not in lookups:  # the frozen trunks' features of all posts, shared by every fold and seed
        lookups.clear()  # one cut's features in memory at a time
        lookups[cut] = MvsaFeatures(model, tcfg.data_dir, tcfg.cache_dir or None, progress=False,
                                    whole=not tcfg.limit)
    # The share depends on the fold only, so every seed (and model) of a fold trains on the same posts.
    train_posts = training_share([p for p, f in zip(posts, assignment) if f != fold], train_fraction, fold)
    held_out = [p for p, f in zip(posts, assignment) if f == fold]
    out = ckpt_dir / f"{name}-s{seed}-f{fold}.pt" if ckpt_dir else None
    soft = None
    if teachers:  # the fold's own teachers, averaged (they share the student's cached features when cut alike)
        probs = []
        for path in teachers:
            teacher, _ = load_model(path)
            lookup = lookups[cut] if feature_cut(teacher) == cut else MvsaFeatures(
                teacher, tcfg.data_dir, tcfg.cache_dir or None, progress=False, whole=not tcfg.limit)
            probs.append(predict_probs(teacher, lookup(train_posts)))
        soft = torch.from_numpy(np.mean(probs, 0))
    rec = train_on_posts(model, tcfg, train_posts, held_out, lookups[cut], out, progress=False, soft=soft)
    probs = predict_probs(model, lookups[cut](held_out))
    y = np.array([LABELS.index(p.label) for p in held_out])
    m = compute_metrics(y, probs.argmax(1), model.labels)
    return {"model": name, "seed": seed, "fold": fold, **metric_row(m), "n": len(held_out),
            "teachers": [p.name for p in teachers], "train_fraction": train_fraction, "n_train": rec["n_train"],
            "history": rec["history"], "params": rec["trainable_params"], "seconds": rec["train_seconds"],
            "model_config": model.cfg.to_dict(), "train_config": rec["train_config"],
            "ids": [p.id for p in held_out], "y": y.tolist(), "probs": np.round(probs, 6).tolist()}


def mean_sd(vals) -> str:
    a = np.asarray(vals, dtype=float)
    return f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0:.2f}"


def oof_by_fold(runs: list[dict]) -> dict[int, tuple[list[str], np.ndarray, np.ndarray]]:
    """fold -> (ids, y, probabilities averaged over the given runs of that fold)."""
    out = {}
    for fold in sorted({r["fold"] for r in runs}):
        rs = [r for r in runs if r["fold"] == fold]
        ids = rs[0]["ids"]
        if any(r["ids"] != ids for r in rs):
            raise ValueError(f"Runs of fold {fold} held out different posts: were they made with other folds?")
        out[fold] = (ids, np.array(rs[0]["y"]), np.mean([np.array(r["probs"]) for r in rs], 0))
    return out


def ensemble_scores(runs: list[dict]) -> list[dict]:
    """Per-fold metrics of the average of ``runs`` (e.g. several seeds, or several models)."""
    return [{"fold": f, **metric_row(compute_metrics(y, p.argmax(1), LABELS))}
            for f, (_, y, p) in oof_by_fold(runs).items()]


def cv_markdown(rows: list[dict], label: str | None = None) -> str:
    """One row per model (mean ± sd over folds × seeds), plus the seed ensemble when there are seeds."""
    lines = ["| model | settings | CV accuracy | CV weighted F1 | CV macro F1 | CV neutral recall | runs "
             "| train s per fold (median) |", "|---|---|---|---|---|---|---|---|"]
    notes = []  # the ensemble against its own seeds, fold by fold
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        settings = label or _settings(rs[0])
        n_seeds = len({r["seed"] for r in rs})
        lines.append(f"| `{name}` | {settings} | " + " | ".join(mean_sd([r[m] for r in rs]) for m in METRICS)
                     + f" | {len({r['fold'] for r in rs})} folds × {n_seeds} seed{'s' if n_seeds > 1 else ''} | "
                     f"{np.median([r['seconds'] for r in rs]):.0f} |")
        if n_seeds > 1:
            es = ensemble_scores(rs)
            lines.append(f"| `{name}` | mean of the {n_seeds} seeds' probabilities | "
                         + " | ".join(mean_sd([e[m] for e in es]) for m in METRICS) + f" | {len(es)} folds | |")
            diffs = [e["accuracy"] - np.mean([r["accuracy"] for r in rs if r["fold"] == e["fold"]]) for e in es]
            notes.append(f"`{name}`: the seeds' ensemble minus the mean of its seeds on the same fold, accuracy "
                         f"{mean_sd(diffs)} (higher on {sum(d > 0 for d in diffs)} of {len(diffs)} folds).")
    return "\n".join(lines + ([""] + notes if notes else []))


_SKIP = {"fusion", "labels", "data_dir", "cache_dir", "seed", "early_stopping", "extra_data", "num_threads", "device",
         "allow_download"}


def _setting_map(rec: dict) -> dict[str, object]:
    """Every setting of a run that says how it was trained (not where its files are), defaults included."""
    out = {k: v for k, v in {**rec.get("model_config", {}), **rec.get("train_config", {})}.items() if k not in _SKIP}
    out["train_fraction"] = rec.get("train_fraction", 1.0)
    out["teachers"] = len(rec.get("teachers", []))
    return out


_DEFAULTS = _setting_map({"model_config": ModelConfig().to_dict(), "train_config": vars(TrainConfig())})


def _settings(rec: dict, base: dict | None = None) -> str:
    """What differs from ``base`` (default: the config defaults), so a table row says how the model was trained."""
    base = base if base is not None else _DEFAULTS
    mine = _setting_map(rec)
    words = []
    for k, v in mine.items():
        if base.get(k, _DEFAULTS.get(k)) == v:
            continue
        if k == "train_fraction":
            words.append(f"trained on {v:.0%} of the other folds")
        elif k == "teachers":
            words.append(f"distilled from the fold's {v} teachers" if v else "no teachers")
        else:
            words.append(f"{k}={v}")
    return ", ".join(words) or ("defaults" if base is _DEFAULTS else "")


def load_runs(folders: list[str | Path]) -> dict[str, list[dict]]:
    """Saved CV runs per ``<folder>:<model>``."""
    out: dict[str, list[dict]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*-s*-f*.json")):
            rec = json.loads(path.read_text())
            out.setdefault(f"{Path(folder).name}:{rec['model']}", []).append(rec)
    return out


def ensemble_markdown(groups: dict[str, list[dict]], combos: list[list[str]]) -> str:
    """CV scores of averages of saved runs (all seeds of each named group), fold by fold."""
    lines = ["| ensemble (runs averaged) | CV accuracy | CV weighted F1 | CV macro F1 | CV neutral recall | folds |",
             "|---|---|---|---|---|---|"]
    for combo in combos:
        runs = [r for g in combo for r in groups[g]]
        es = ensemble_scores(runs)
        lines.append(f"| {' + '.join(f'`{g}`' for g in combo)} ({len(runs) // len(es)} per fold) | "
                     + " | ".join(mean_sd([e[m] for e in es]) for m in METRICS) + f" | {len(es)} |")
    return "\n".join(lines)


@lru_cache(maxsize=None)
def _n_posts(data_dir: str, limit: int) -> int:
    return len(cv_posts(data_dir, limit))


def n_train(rec: dict) -> int:
    """How many posts a CV run trained on (runs saved before this was recorded trained on all other folds)."""
    if "n_train" in rec:
        return rec["n_train"]
    t = rec["train_config"]
    return _n_posts(t["data_dir"], t.get("limit", 0)) - rec["n"]


def paired_markdown(folders: list[str | Path]) -> str:
    """One row per folder of saved CV runs, each scored on the (fold, seed) runs that every folder has: the same
    held-out posts and seeds, so the rows differ only in how they were trained. "Δ accuracy" is each run's
    accuracy minus the first folder's on the same fold and seed (mean ± sd over those pairs)."""
    runs = {}
    for folder in folders:
        groups = load_runs([folder])
        if len(groups) != 1:
            raise SystemExit(f"No saved CV run in {folder}" if not groups else
                             f"{folder} holds runs of several models: give one folder per model")
        runs[str(folder)] = {(r["fold"], r["seed"]): r for r in next(iter(groups.values()))}
    common = sorted(set.intersection(*(set(rs) for rs in runs.values())))
    if not common:
        raise SystemExit(f"{', '.join(runs)} share no run of the same fold and seed")
    first = runs[str(folders[0])]
    folds, seeds = sorted({f for f, _ in common}), sorted({s for _, s in common})
    lines = [f"{len(common)} runs in every folder: folds {folds}, seeds {seeds}.", "",
             "| runs | settings | training posts per fold | CV accuracy | Δ accuracy, paired | CV weighted F1 "
             "| CV macro F1 | CV neutral recall | train s per fold (median) |", "|---|---|---|---|---|---|---|---|---|"]
    base = _setting_map(first[common[0]])
    for folder, by_run in runs.items():
        rs = [by_run[key] for key in common]
        if by_run is first:
            settings, delta = _settings(rs[0]), "—"
        else:
            diff = _settings(rs[0], base)
            settings = "as the first row" + (f" but {diff}" if diff else "")
            delta = mean_sd([r["accuracy"] - first[key]["accuracy"] for r, key in zip(rs, common)])
        lines.append(f"| `{folder}` (`{rs[0]['model']}`) | {settings} | {int(np.median([n_train(r) for r in rs]))} "
                     f"| {mean_sd([r['accuracy'] for r in rs])} | {delta} | "
                     + " | ".join(mean_sd([r[m] for r in rs]) for m in METRICS[1:])
                     + f" | {np.median([r['seconds'] for r in rs]):.0f} |")
    shares = {by_run[key].get("train_fraction", 1.0) for by_run in runs.values() for key in common}
    if len(shares) >= 3:  # a learning curve: how fast accuracy grows with training posts
        points = [(n_train(by_run[key]), by_run[key]["accuracy"]) for by_run in runs.values() for key in common]
        from scipy.stats import linregress

        fit = linregress(np.log2([n for n, _ in points]), [a for _, a in points])
        lines += ["", f"Least-squares line over the {len(points)} runs: accuracy = {fit.intercept:.2f} + "
                  f"{fit.slope:.2f} × log2(training posts) (± {fit.stderr:.2f}; runs on the same fold are not "
                  "independent, so read it as a trend). " + (
                      f"At that rate one more point of accuracy takes {2 ** (1 / fit.slope):.2f} times the training "
                      "posts." if fit.slope > 0 else "Accuracy does not grow with training posts here.")]
    return "\n".join(lines)


def to_markdown(rows: list[dict]) -> str:
    lines = ["| model | val accuracy | val weighted F1 | val macro F1 | neutral recall | best seed acc / wF1 "
             "| trainable params | train s (median) | epochs run / max |", "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        best = max(rs, key=lambda r: r["weighted_f1"])
        lines.append(f"| `{name}` | {mean_sd([r['accuracy'] for r in rs])} | {mean_sd([r['weighted_f1'] for r in rs])} | "
                     f"{mean_sd([r['macro_f1'] for r in rs])} | {mean_sd([r['neutral_recall'] for r in rs])} | "
                     f"{best['accuracy']:.2f} / {best['weighted_f1']:.2f} | {rs[0]['params']:,} | "
                     f"{np.median([r['seconds'] for r in rs]):.0f} | "
                     f"{'/'.join(str(r.get('epochs_run', '?')) for r in rs)} / {rs[0].get('max_epochs', '?')} |")
    return "\n".join(lines)


def write_block(path: Path, name: str, body: str) -> None:
    """Replace (or append) the named block of a Markdown file."""
    start, end = f"<!-- compare:{name}:start -->", f"<!-- compare:{name}:end -->"
    block = f"{start}\n{body}\n{end}"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def emit_block(body: str, out: str | None, name: str) -> None:
    """Print a table and, with ``out``, write it as the named block of that Markdown file."""
    print(body)
    if out:
        write_block(Path(out), name, body)


def parse_sets(items: list[str]) -> tuple[dict, dict]:
    """``KEY=VALUE`` pairs -> (ModelConfig kwargs, TrainConfig kwargs), typed like the fields' defaults."""
    mfields, tfields = {f.name: f for f in fields(ModelConfig)}, {f.name: f for f in fields(TrainConfig)}
    mkw, tkw = {}, {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or (key not in mfields and key not in tfields):
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                             f"{sorted(set(mfields) | set(tfields))}")
        default = (mfields.get(key) or tfields[key]).default
        if isinstance(default, bool):
            value = raw.lower() in ("1", "true", "yes")
        elif isinstance(default, (int, float, str)):
            try:
                value = type(default)(raw)
            except ValueError:
                raise SystemExit(f"--set {key}: {raw!r} is not a {type(default).__name__}") from None
        else:
            raise SystemExit(f"--set {key}: only scalar fields can be set here")
        (mkw if key in mfields else tkw)[key] = value
    return mkw, tkw


def main(argv=None, prog: str = "python -m mmsa_core.compare") -> None:
    """``prog``: how the block's recorded command starts (a script that wraps this one names itself)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help=f"default: all of {list_fusions()}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--cv", type=int, default=0, help="k-fold cross-validation over train+val (e.g. 5)")
    ap.add_argument("--fold-seed", type=int, default=0, help="seed of the fold assignment (keep it fixed)")
    ap.add_argument("--folds", nargs="*", type=int, default=None, help="only these folds (default: all)")
    ap.add_argument("--cv-ensemble", nargs="*", default=None, metavar="DIR",
                    help="score averages of the CV runs saved in these folders (no training)")
    ap.add_argument("--cv-paired", nargs="*", default=None, metavar="DIR",
                    help="one row per folder of saved CV runs, on the folds and seeds they all have (no training)")
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--block", default="frozen", help="name of the table's block in the output file")
    ap.add_argument("--text-layers", type=int, default=0)
    ap.add_argument("--loss", default="ce")
    ap.add_argument("--epochs", type=int, default=None, help="default: 30 with early stopping on val, 3 with --cv")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any ModelConfig/TrainConfig field, e.g. --set image_trainable_blocks=2")
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--json", help="also write the per-run rows here")
    ap.add_argument("--save-dir", help="keep every run here (checkpoints on val; records with --cv); runs already "
                    "saved there are read back instead of trained again")
    ap.add_argument("--keep-checkpoints", action="store_true", help="with --cv: also keep each fold's checkpoint")
    ap.add_argument("--teacher-dir", help="with --cv: distil each fold from the checkpoints that --keep-checkpoints "
                    "kept there for the same fold (averaged)")
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="with --cv: train on this stratified share of the other folds (a learning curve)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cmd = (prog + " " + " ".join(argv if argv is not None else __import__("sys").argv[1:])).strip()
    t0 = time.perf_counter()
    if args.cv_ensemble:
        groups = load_runs(args.cv_ensemble)
        names = list(groups)
        combos = [[g] for g in names] + ([names] if len(names) > 1 else [])
        body = f"Command: `{cmd}`.\n\n" + ensemble_markdown(groups, combos)
        write_block(Path(args.out), args.block, body)
        print(body)
        return
    if args.cv_paired:
        body = f"Command: `{cmd}`.\n\n" + paired_markdown(args.cv_paired)
        write_block(Path(args.out), args.block, body)
        print(body)
        return
    models = args.models or list_fusions()
    if unknown := [m for m in models if m not in list_fusions()]:
        raise SystemExit(f"Unknown model(s) {unknown}; choose from {list_fusions()}")
    mkw, tkw = parse_sets(args.set)
    mkw = {"text_trainable_layers": args.text_layers, **mkw}
    tkw = {"loss": args.loss, "lr": args.lr, "data_dir": args.data_dir, "patience": args.patience,
           "epochs": args.epochs or (3 if args.cv else 30), **tkw}
    try:  # settings that do not go together stop here, before any feature is computed or block written
        TrainConfig(**tkw)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.cv:
        rows = run_cv(models, args.seeds, mkw, tkw, args.cv, args.fold_seed, args.save_dir or "runs/cv",
                      args.keep_checkpoints, args.folds, args.teacher_dir, args.train_fraction)
        table = cv_markdown(rows)
        n = sum(r["n"] for r in rows if (r["model"], r["seed"]) == (rows[0]["model"], rows[0]["seed"]))
        what = f"{args.cv}-fold cross-validation over train+val ({n} posts, fold seed {args.fold_seed}), seeds {args.seeds}"
    else:
        rows = run(models, args.seeds, mkw, tkw, args.save_dir)
        table = to_markdown(rows)
        what = f"{len(args.seeds)} seeds"
    # Runs read back from --save-dir cost nothing now: report the training time the runs took when they were made.
    spent = sum(r["seconds"] for r in rows) if args.cv else time.perf_counter() - t0
    body = f"Command: `{cmd}` ({what}, {spent:.0f} s of training in all on this machine).\n\n{table}"
    write_block(Path(args.out), args.block, body)
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k not in ("probs", "ids", "y")}
                                               for r in rows], indent=2))
    print(table)


if __name__ == "__main__":
    main()
