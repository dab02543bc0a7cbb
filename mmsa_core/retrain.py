"""Retrain from the annotators' corrections and promote the new model only if it does not lose on val.

    python -m mmsa_core.retrain --db URL --base mvsa-single [--data-dir DIR] [--force] [--epochs N]

Steps: export a snapshot of the corrections (``annotations``), train the current default model's recipe
on MVSA train + corrections (cached features; for an ensemble, every member's recipe, then the same
ensemble of the new members), compare old and new on ``val`` and on the corrected posts
(fixed / still wrong / regressed), register the new model version, make it the default when it is at
least as good on val (or when forced).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .checkpoint import DEFAULT_CHECKPOINT, file_sha256, load_model
from .config import ModelConfig, TrainConfig
from .data import Post, load_export_posts
from .ensemble import EnsembleClassifier, load_member, save_ensemble
from .evaluate import compute_metrics
from .features import MvsaFeatures, predict_probs
from .train import train, training_posts

log = logging.getLogger(__name__)
DEFAULT_MVSA_DIR = "../shared/data/mvsa-single"


def _step(progress, fraction: float, desc: str) -> None:
    log.info(desc)
    if progress is not None:
        progress(fraction, desc=desc)


def _base_checkpoint(sessions, base_checkpoint) -> Path:
    """The explicit checkpoint, else the database's default model, else the shipped default."""
    from annotations import get_default_model

    if base_checkpoint:
        return Path(base_checkpoint)
    with sessions.begin() as s:
        current = get_default_model(s)
    return Path(current["checkpoint_path"]) if current else DEFAULT_CHECKPOINT


def correction_impact(old_pred: np.ndarray, new_pred: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """How the corrected posts fare: fixed (old wrong, new right), still wrong, regressed, kept right."""
    old_ok, new_ok = old_pred == y, new_pred == y
    return {"n": int(len(y)), "fixed": int((~old_ok & new_ok).sum()), "still_wrong": int((~old_ok & ~new_ok).sum()),
            "regressed": int((old_ok & ~new_ok).sum()), "kept_right": int((old_ok & new_ok).sum())}


def _lookup(model, tcfg: TrainConfig) -> MvsaFeatures:
    return MvsaFeatures(model, tcfg.data_dir, tcfg.cache_dir or None, progress=False, whole=not tcfg.limit)


def _scores(model, lookup: MvsaFeatures, posts: list[Post]) -> np.ndarray:
    return predict_probs(model, lookup(posts)).argmax(1) if posts else np.zeros(0, dtype=int)


def run_retrain(db_url: str | None = None, data_dir: str | Path | None = None, base_checkpoint=None,
                mvsa_dir: str = DEFAULT_MVSA_DIR, force: bool = False, progress=None, epochs: int | None = None,
                limit: int = 0, name: str | None = None) -> dict:
    """Export -> train -> compare -> register (-> promote). Returns a report of plain values."""
    from annotations import (create_engine_from_url, create_sessionmaker, default_data_dir, default_db_url,
                             export_snapshot,
                             init_db, list_model_versions, register_model_version)

    t0 = time.perf_counter()
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    engine = create_engine_from_url(db_url or default_db_url(data_dir))
    init_db(engine)
    sessions = create_sessionmaker(engine)
    _step(progress, 0.02, "exporting corrections")
    with sessions.begin() as s:
        manifest = export_snapshot(s, data_dir)
    base = _base_checkpoint(sessions, base_checkpoint)
    old_model, meta = load_model(base)
    name = name or f"retrain-{manifest['export_id']}"
    out = data_dir / "models" / f"{name}.pt"
    recipes = meta.get("members") or [meta]  # an ensemble retrains each member's own recipe
    member_paths = []
    for i, recipe in enumerate(recipes):
        tcfg = _train_config(recipe, mvsa_dir, manifest["path"], limit, epochs)
        which = f"member {i + 1}/{len(recipes)} " if len(recipes) > 1 else ""
        _step(progress, 0.1 + 0.75 * i / len(recipes),
              f"training {which}on MVSA train + {manifest['n_rows']} corrections")
        path = out if len(recipes) == 1 else data_dir / "models" / f"{name}.members" / f"member-{i}.pt"
        train(ModelConfig.from_dict(recipe["config"]), tcfg, path, progress=False)
        member_paths.append(path)
    train_seconds = time.perf_counter() - t0
    half = meta.get("stored_dtype") == "float16"  # keep the base's storage; score the weights as stored
    if len(recipes) > 1:
        new_model = EnsembleClassifier([load_member(p, half) for p in member_paths]).eval()
    else:
        new_model, _ = load_model(out)
    _step(progress, 0.85, "comparing old and new model")
    lookup = _lookup(old_model, tcfg)
    _, val = training_posts(tcfg)
    labels = old_model.labels
    y_val = np.array([labels.index(p.label) for p in val])
    old_val = compute_metrics(y_val, _scores(old_model, lookup, val), labels)
    new_val = compute_metrics(y_val, _scores(new_model, _lookup(new_model, tcfg), val), labels)
    corrected = _corrected_posts(manifest["path"], tcfg)
    y_c = np.array([labels.index(p.label) for p in corrected])
    impact = correction_impact(_scores(old_model, lookup, corrected),
                               _scores(new_model, _lookup(new_model, tcfg), corrected), y_c)
    metric = tcfg.select_metric
    if len(recipes) > 1:  # one file holding the new members, like the base; the member files go
        save_ensemble(member_paths, out, half=half, metrics={"val": new_val},
                      selection=f"retrained members of {base.name}")
        shutil.rmtree(member_paths[0].parent)
    promoted = bool(force or new_val[metric] >= old_val[metric])
    with sessions.begin() as s:
        if not list_model_versions(s):  # first retrain: record where we started from
            register_model_version(s, f"base-{base.stem}", base, meta["sha256"], {"val": _brief(old_val)},
                                   make_default=True)
        version = register_model_version(s, name, out, file_sha256(out), {"val": _brief(new_val)},
                                         trained_on_export_id=manifest["export_id"], make_default=promoted)
    _step(progress, 1.0, "promoted" if promoted else "kept the old default (new model lost on val)")
    return {"export_id": manifest["export_id"], "n_corrections": manifest["n_rows"], "base_checkpoint": str(base),
            "checkpoint": str(out), "model_version": version["name"], "select_metric": metric,
            "old": {"val": _brief(old_val)}, "new": {"val": _brief(new_val)}, "correction_impact": impact,
            "promoted": promoted, "forced": force, "n_members": len(recipes), "train_seconds": train_seconds,
            "seconds": time.perf_counter() - t0}


def _train_config(recipe: dict, mvsa_dir: str, export_path: str, limit: int, epochs: int | None) -> TrainConfig:
    """The recipe's own training settings, on MVSA train + the export."""
    saved = recipe.get("train_config", {})
    tcfg = TrainConfig(**{**saved, "data_dir": mvsa_dir, "extra_data": [export_path], "limit": limit,
                          "cache_dir": saved.get("cache_dir", "")})
    return replace(tcfg, epochs=epochs) if epochs else tcfg


def _brief(m: dict) -> dict:
    keep = ("n", "accuracy", "weighted_f1", "macro_f1", "confusion_matrix", "labels")
    return {**{k: m[k] for k in keep}, "neutral_recall": m["per_class"]["neutral"]["recall"]}


def _corrected_posts(export_path: str, tcfg: TrainConfig) -> list[Post]:
    """The training-side corrected posts as training sees them (val/test corrections excluded)."""
    train_posts, _ = training_posts(tcfg)
    corrected_ids = set()
    for p in load_export_posts(export_path):
        corrected_ids.add(p.source.split(":", 1)[1] if p.source.startswith("mvsa-single:") else p.id)
    return [p for p in train_posts if p.id in corrected_ids]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or SQLite in --data-dir)")
    ap.add_argument("--base", default="mvsa-single", choices=["mvsa-single"], help="base training data")
    ap.add_argument("--mvsa-dir", default=DEFAULT_MVSA_DIR)
    ap.add_argument("--data-dir", default=None, help="app data folder (default: $MMSA_DATA_DIR or ./data)")
    ap.add_argument("--checkpoint", default=None, help="model to retrain (default: the current default)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--force", action="store_true", help="promote even if the new model loses on val")
    ap.add_argument("--json", help="write the report here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    report = run_retrain(a.db, a.data_dir, a.checkpoint, a.mvsa_dir, a.force, epochs=a.epochs)
    text = json.dumps(report, indent=2)
    if a.json:
        Path(a.json).write_text(text)
    o, n = report["old"]["val"], report["new"]["val"]
    print(f"val accuracy {o['accuracy']:.2f} -> {n['accuracy']:.2f}, weighted F1 {o['weighted_f1']:.2f} -> "
          f"{n['weighted_f1']:.2f}; corrections: {report['correction_impact']}; "
          f"{'promoted' if report['promoted'] else 'not promoted'}: {report['model_version']}")


if __name__ == "__main__":
    main()
