"""Retrain from the database's labels and promote the new model only when it is not worse where it matters.

    python -m mmsa_core.retrain --data-dir DIR --base db            # the database's labels alone
    python -m mmsa_core.retrain --data-dir DIR --base mvsa-single   # MVSA train + the database's labels
    python -m mmsa_core.retrain --job ID                             # a job the app queued (state in the DB)

Steps: export a snapshot of the labels (``annotations``), split off the audit set (a stable slice of the
database's labels that never trains, see ``retrain_data``), retrain every member of the model the app
serves, compare old and new on the audit set and on MVSA val (where present and not trained on: a model
refit on train+val, as the shipped default is, is judged on the audit set alone), register the new version,
and make it the default when it is not worse on either by more than the tolerance (or when forced).

Warm start (default): each member keeps its encoders, fine-tuned layers included, as a frozen trunk whose
output is cached, and only its fusion head and classifier train a few epochs from their current weights;
members that share encoders share one feature set. ``--full`` instead retrains every member's own recipe
from scratch (fine-tuning included; a member that averages several runs' weights is remade from as many runs):
slower, see docs/retraining.md for what the shortcut costs.
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
import torch

from .checkpoint import (DEFAULT_CHECKPOINT, file_sha256, read_checkpoint, save_checkpoint, trained_on_val,
                         write_checkpoint)
from .config import ModelConfig, TrainConfig
from .data import Post
from .ensemble import average_weights, build_member, save_ensemble
from .evaluate import compute_metrics
from .features import MvsaFeatures, feature_cut, predict_probs
from .model import MultimodalClassifier, encoders_frozen
from .retrain_data import AUDIT_SEED, AUDIT_SHARE, BASES, RetrainData, gather, resolve_base
from .train import seed_everything, train_on_posts

log = logging.getLogger(__name__)
DEFAULT_MVSA_DIR = "../shared/data/mvsa-single"
TOLERANCE = 1.0  # weighted-F1 points the new model may lose on a judging set (at least one post's worth)
WARM_EPOCHS, WARM_LR = 2, 3e-4


def _step(progress, fraction: float, desc: str) -> None:
    log.info(desc)
    if progress is not None:
        progress(fraction, desc)


def _base_checkpoint(sessions, base_checkpoint) -> Path:
    """The explicit checkpoint, else the database's default model (if its file exists), else the shipped one."""
    from annotations import get_default_model

    if base_checkpoint:
        return Path(base_checkpoint)
    with sessions.begin() as s:
        current = get_default_model(s)
    if current and Path(current["checkpoint_path"]).is_file():
        return Path(current["checkpoint_path"])
    return DEFAULT_CHECKPOINT


def correction_impact(old_pred: np.ndarray, new_pred: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """How labelled posts fare: fixed (old wrong, new right), still wrong, regressed, kept right."""
    old_ok, new_ok = old_pred == y, new_pred == y
    return {"n": int(len(y)), "fixed": int((~old_ok & new_ok).sum()), "still_wrong": int((~old_ok & ~new_ok).sum()),
            "regressed": int((old_ok & ~new_ok).sum()), "kept_right": int((old_ok & new_ok).sum())}


def _saved_config(recipe: dict) -> TrainConfig:
    """The member's own training config, without its teacher: a distilled model retrains on the labels alone
    (a teacher's probabilities would pull against the annotators' corrections)."""
    return replace(TrainConfig.from_saved(recipe.get("train_config", {})), teacher="")


def _warm_config(recipe: dict, epochs: int | None, cache_dir: str, limit: int) -> TrainConfig:
    return replace(_saved_config(recipe), epochs=epochs or WARM_EPOCHS, lr=WARM_LR, early_stopping=False,
                   augment=False, bucket_by_length=True, extra_data=[], cache_dir=cache_dir, limit=limit)


def _full_config(recipe: dict, epochs: int | None, cache_dir: str, limit: int) -> TrainConfig:
    tc = replace(_saved_config(recipe), early_stopping=False, extra_data=[], cache_dir=cache_dir, limit=limit)
    return replace(tc, epochs=epochs) if epochs else tc


class _Judge:
    """Accumulates old and new members' probabilities on the judging sets (their mean is the ensemble's)."""

    def __init__(self, sets: dict[str, list[Post]], labels: tuple[str, ...]):
        self.sets, self.labels = sets, labels
        self.y = {k: np.array([labels.index(p.label) for p in ps], dtype=int) for k, ps in sets.items()}
        self.probs = {(who, k): [] for who in ("old", "new") for k in sets}

    def add(self, who: str, model, lookup) -> None:
        for k, posts in self.sets.items():
            if posts:
                self.probs[(who, k)].append(predict_probs(model, lookup(posts)))

    def predictions(self, who: str, k: str) -> np.ndarray:
        return np.mean(self.probs[(who, k)], 0).argmax(1) if self.sets[k] else np.zeros(0, dtype=int)

    def metrics(self, who: str, k: str) -> dict | None:
        return _brief(compute_metrics(self.y[k], self.predictions(who, k), self.labels)) if self.sets[k] else None


def _brief(m: dict) -> dict:
    keep = ("n", "accuracy", "weighted_f1", "macro_f1", "confusion_matrix", "labels")
    return {**{k: m[k] for k in keep}, "neutral_recall": m["per_class"]["neutral"]["recall"]}


def gate(old: dict, new: dict, tolerance: float = TOLERANCE) -> dict:
    """Per judging set: may the new model replace the old? Not worse in weighted F1 by more than the
    tolerance, which is at least one post's worth on a small set (100 / n points)."""
    out = {}
    for k in old:
        if old[k] is None:
            continue
        tol = max(tolerance, 100.0 / old[k]["n"])
        drop = old[k]["weighted_f1"] - new[k]["weighted_f1"]
        out[k] = {"old": old[k]["weighted_f1"], "new": new[k]["weighted_f1"], "tolerance": tol, "ok": drop <= tol}
    return out


def run_retrain(db_url: str | None = None, data_dir: str | Path | None = None, base_checkpoint=None,
                mvsa_dir: str | None = DEFAULT_MVSA_DIR, force: bool = False, progress=None, epochs: int | None = None,
                limit: int = 0, name: str | None = None, base: str = "auto", full: bool = False,
                audit_share: float = AUDIT_SHARE, audit_seed: str = AUDIT_SEED, tolerance: float = TOLERANCE,
                cache_dir: str | None = None) -> dict:
    """Export -> train -> judge -> register (-> promote). Returns a report of plain values.

    ``progress(fraction, desc)`` is called at every stage and every few batches; it may raise to cancel
    (the current default keeps serving: nothing is registered before the end)."""
    from annotations import (create_engine_from_url, create_sessionmaker, default_data_dir, default_db_url,
                             export_snapshot, init_db, list_model_versions, register_model_version)

    t0 = time.perf_counter()
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    cache_dir = cache_dir if cache_dir is not None else str(data_dir / "cache")
    base = resolve_base(base, mvsa_dir)
    engine = create_engine_from_url(db_url or default_db_url(data_dir))
    init_db(engine)
    sessions = create_sessionmaker(engine)
    _step(progress, 0.01, "exporting the database's labels")
    with sessions.begin() as s:
        manifest = export_snapshot(s, data_dir)
    base_path = _base_checkpoint(sessions, base_checkpoint)
    ckpt = read_checkpoint(base_path)
    data = gather(manifest["path"], base, mvsa_dir, audit_share, audit_seed, limit, val_trained=trained_on_val(ckpt))
    if not data.train:
        raise ValueError("Nothing to train on: the database has no labelled posts with images yet "
                         f"({data.skipped or 'no labels'}); label some posts or import a labelled CSV first")
    recipes = ckpt["members"] if ckpt.get("kind") == "ensemble" else [ckpt]
    name = name or f"retrain-{manifest['export_id']}"
    out = data_dir / "models" / f"{name}.pt"
    judge = _Judge({"audit": data.audit, "val": data.val}, tuple(ckpt["labels"]))
    db_ids = {p.id for p in data.db_train}
    fit_eval = {"db_train": [p for p in data.train if p.id in db_ids]}
    trained_on = _Judge(fit_eval, tuple(ckpt["labels"]))
    t_feat = t_train = 0.0
    members_dir = data_dir / "models" / f".{name}.members"  # nothing lands in models/ before the end
    try:
        member_paths = []
        lookups: dict[tuple, MvsaFeatures] = {}
        for i, recipe in enumerate(recipes):
            lo, hi = 0.05 + 0.85 * i / len(recipes), 0.05 + 0.85 * (i + 1) / len(recipes)
            which = f"member {i + 1}/{len(recipes)}" if len(recipes) > 1 else "the model"
            _step(progress, lo, f"{'retraining' if full else 'warm-starting'} {which} on {data.describe()}")
            hook = (lambda f, lo=lo, hi=hi, which=which: progress(lo + (hi - lo) * f, f"training {which}")) \
                if progress else None
            path = members_dir / f"member-{i}.pt"
            ta = time.perf_counter()
            rec = _retrain_member(recipe, full, data, mvsa_dir, (epochs, cache_dir, limit), lookups, path,
                                  judge, trained_on, hook, base_path.name)
            t_feat += rec["feature_seconds"]
            t_train += time.perf_counter() - ta - rec["feature_seconds"]
            member_paths.append(path)
        _step(progress, 0.92, "judging old and new on the audit set" + (" and MVSA val" if data.val else ""))
        old_m = {k: judge.metrics("old", k) for k in ("audit", "val")}
        new_m = {k: judge.metrics("new", k) for k in ("audit", "val")}
        checks = gate(old_m, new_m, tolerance)
        promoted = bool(force) or (bool(checks) and all(c["ok"] for c in checks.values()))
        nothing = ("nothing to judge on: no audit posts yet, and MVSA val trained the served model"
                   if data.val_trained else
                   "nothing to judge on: no audit posts and no MVSA val")
        reason = ("forced by an admin" if force else nothing
                  if not checks else "not worse on " + " and ".join(checks) if promoted
                  else "worse on " + " and ".join(k for k, c in checks.items() if not c["ok"]))
        metrics = {k: v for k, v in new_m.items() if v is not None}
        if len(recipes) > 1:  # one file holding the new members, like the base
            save_ensemble(member_paths, out, storage=ckpt.get("stored_dtype", "float32"), metrics=metrics,
                          selection=f"retrained members of {base_path.name}")
        else:
            member_paths[0].replace(out)
    finally:
        shutil.rmtree(members_dir, ignore_errors=True)
    with sessions.begin() as s:
        if not list_model_versions(s):  # first retrain: record where we started from
            register_model_version(s, f"base-{base_path.stem}", base_path, file_sha256(base_path),
                                   {k: v for k, v in old_m.items() if v is not None}, make_default=True)
        version = register_model_version(s, name, out, file_sha256(out), metrics,
                                         trained_on_export_id=manifest["export_id"], make_default=promoted)
    _step(progress, 1.0, f"{'promoted' if promoted else 'kept the current model'}: {reason}")
    y_fit = trained_on.y["db_train"]
    return {"export_id": manifest["export_id"], "base": data.base, "data": data.describe(), "mode": "full" if full
            else "warm", "n_db_labels": len(data.db_train) + len(data.audit), "n_train": len(data.train),
            "n_audit": len(data.audit), "n_val": len(data.val), "skipped": data.skipped,
            "base_checkpoint": base_path.name, "checkpoint": out.name, "model_version": version["name"],
            "old": old_m, "new": new_m, "gate": checks, "tolerance": tolerance,
            "audit_impact": correction_impact(judge.predictions("old", "audit"), judge.predictions("new", "audit"),
                                              judge.y["audit"]),
            "correction_impact": correction_impact(trained_on.predictions("old", "db_train"),
                                                   trained_on.predictions("new", "db_train"), y_fit),
            "promoted": promoted, "forced": bool(force), "reason": reason, "n_members": len(recipes),
            "feature_seconds": t_feat, "train_seconds": t_train, "seconds": time.perf_counter() - t0}


def _retrain_member(recipe: dict, full: bool, data: RetrainData, mvsa_dir, settings: tuple, lookups: dict,
                    path: Path, judge: _Judge, trained_on: _Judge, hook, base_name: str) -> dict:
    """Retrain one member (warm start or full recipe) into ``path``; both judges get the old and the new
    member's probabilities. Returns the training record."""
    epochs, cache_dir, limit = settings
    old = build_member(recipe)
    seed_everything(recipe.get("train_config", {}).get("seed", 0))
    if full:
        # from scratch, the new member has seen val only when val is among its training posts
        tcfg = replace(_full_config(recipe, epochs, cache_dir, limit),
                       train_on_val=data.val_trained)
        with encoders_frozen(old):
            t_old = _judged("old", old, _lookup(old, mvsa_dir, tcfg, lookups), judge, trained_on)
        new, rec = _full_runs(recipe, tcfg, data.train, mvsa_dir, lookups, path, hook)
    else:
        tcfg = _warm_config(recipe, epochs, cache_dir, limit)
        new = build_member(recipe)
        with encoders_frozen(old), encoders_frozen(new):  # same encoders: one feature set for both
            lookup = _lookup(new, mvsa_dir, tcfg, lookups)
            t_old = _judged("old", old, lookup, judge, trained_on)
            rec = train_on_posts(new, tcfg, data.train, [], lookup, None, progress=False, hook=hook)
        save_checkpoint(new, path, **{**rec, "warm_started_from": recipe.get("source", base_name),
                                      # a --full retrain later remakes it as the base was made
                                      **{k: recipe[k] for k in ("averaged_from",) if k in recipe}})
    with encoders_frozen(new):
        _judged("new", new, _lookup(new, mvsa_dir, tcfg, lookups), judge, trained_on)
    # Feature time = encoding (or reading the cache) while the old member was judged, plus training's own.
    return {**rec, "feature_seconds": rec["feature_seconds"] + t_old}


def _full_runs(recipe: dict, tcfg: TrainConfig, posts: list[Post], mvsa_dir, lookups: dict, path: Path,
               hook) -> tuple[MultimodalClassifier, dict]:
    """A member's recipe trained from scratch into ``path``. A member that is the mean of several runs' weights
    (``ensemble --average-weights``) is remade the same way: one run per seed it averaged, from its init seed,
    then their mean."""
    seeds = [int(m["seed"]) for m in recipe.get("averaged_from", [])] or [tcfg.seed]
    paths, rec, t_feat = [], {}, 0.0
    t0 = time.perf_counter()
    for k, seed in enumerate(seeds):
        tk = replace(tcfg, seed=seed, init_seed=tcfg.model_seed)
        seed_everything(tk.model_seed)
        model = MultimodalClassifier(ModelConfig.from_dict(recipe["config"]))
        run_hook = (lambda f, k=k: hook((k + f) / len(seeds))) if hook else None
        run_path = path if len(seeds) == 1 else path.with_name(f"{path.stem}-s{seed}.pt")
        rec = train_on_posts(model, tk, posts, [], _lookup(model, mvsa_dir, tk, lookups), run_path,
                             progress=False, hook=run_hook)
        paths.append(run_path)
        t_feat += rec["feature_seconds"]
    if len(seeds) == 1:
        return model, rec
    soup = average_weights([read_checkpoint(p) for p in paths], [p.name for p in paths])
    soup = {**soup, "metrics": {}, "train_seconds": time.perf_counter() - t0}
    write_checkpoint(soup, path)
    for p in paths:
        p.unlink()
    return build_member(soup), {**rec, "train_seconds": soup["train_seconds"] - t_feat, "feature_seconds": t_feat}


def _judged(tag: str, model, lookup: MvsaFeatures, *judges: _Judge) -> float:
    """Give every judge ``model``'s predictions under ``tag``; returns the seconds it took (the features are
    encoded, or read from the cache, on a lookup's first use)."""
    t = time.perf_counter()
    for j in judges:
        j.add(tag, model, lookup)
    return time.perf_counter() - t


def _lookup(model, mvsa_dir, tcfg: TrainConfig, lookups: dict) -> MvsaFeatures:
    """One feature set per cut, kept while consecutive members share it (one set in memory at a time)."""
    key = feature_cut(model)
    if key not in lookups:
        lookups.clear()
        have_mvsa = bool(mvsa_dir) and (Path(mvsa_dir) / "posts.csv").is_file()
        # float16 features: half the memory (the 4,061 MVSA posts are 1.4 GB in float32), batches in float32
        lookups[key] = MvsaFeatures(model, mvsa_dir if have_mvsa else None, tcfg.cache_dir or None, progress=False,
                                    whole=not tcfg.limit, dtype=torch.float16)
    return lookups[key]


def run_job(job_id: int, db_url: str | None, data_dir: str | None, **kwargs) -> None:
    """Run a retraining job the app queued: its parameters come from the job row, its progress, heartbeat,
    report or error go back there; Cancel stops it at the next batch."""
    from annotations import create_engine_from_url, create_sessionmaker, default_data_dir, default_db_url
    from annotations.jobs import JobCancelled, JobReporter

    data_dir = data_dir or str(default_data_dir())
    sessions = create_sessionmaker(create_engine_from_url(db_url or default_db_url(data_dir)))
    reporter = JobReporter(sessions, job_id)
    with sessions() as s:
        from annotations.jobs import get_job

        params = {**kwargs, **(get_job(s, job_id)["params"] or {})}
    try:
        report = run_retrain(db_url, data_dir, progress=reporter, **params)
    except JobCancelled:
        log.info("job %d cancelled", job_id)
        reporter.finish("cancelled")
        return
    except Exception as e:
        log.exception("job %d failed", job_id)
        reporter.finish("failed", error=f"{e.__class__.__name__}: {e}")
        raise SystemExit(1) from e
    reporter.finish("done", report=json.loads(json.dumps(report, default=float)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL (default: $MMSA_DB_URL or SQLite in --data-dir)")
    ap.add_argument("--data-dir", default=None, help="app data folder (default: $MMSA_DATA_DIR or ./data)")
    ap.add_argument("--base", default="auto", choices=BASES,
                    help="db: the database's labels alone; mvsa-single: MVSA train + them; auto: mvsa-single if found")
    ap.add_argument("--mvsa-dir", default=DEFAULT_MVSA_DIR)
    ap.add_argument("--checkpoint", default=None, help="model to retrain (default: the one the app serves)")
    ap.add_argument("--full", action="store_true", help="retrain each member's recipe from scratch (slow)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--audit-share", type=float, default=AUDIT_SHARE)
    ap.add_argument("--tolerance", type=float, default=TOLERANCE, help="weighted-F1 points the new model may lose")
    ap.add_argument("--force", action="store_true", help="promote even if the new model is worse")
    ap.add_argument("--job", type=int, default=None, help="run the queued job with this id (used by the app)")
    ap.add_argument("--json", help="write the report here")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.job is not None:
        run_job(a.job, a.db, a.data_dir, mvsa_dir=a.mvsa_dir)
        return
    try:
        report = run_retrain(a.db, a.data_dir, a.checkpoint, a.mvsa_dir, a.force, epochs=a.epochs, base=a.base,
                             full=a.full, audit_share=a.audit_share, tolerance=a.tolerance)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    text = json.dumps(report, indent=2, default=float)
    if a.json:
        Path(a.json).write_text(text)
    print(f"{report['data']}: {report['reason']}; " + "; ".join(
        f"{k} weighted F1 {c['old']:.2f} -> {c['new']:.2f}" for k, c in report["gate"].items())
          + f"; {report['model_version']} {'promoted' if report['promoted'] else 'registered, not promoted'} "
          f"({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
