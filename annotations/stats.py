"""Label counts and agreement: between annotators (Cohen's and Fleiss' kappa) and with the model.

Only labels in force count: each annotator's latest row per post, when it is a label.
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotations.labels import LABELS
from annotations.models import Annotation, Annotator, Post, Prediction
from annotations.queries import adjudications_in_force_stmt, effective_labels_stmt, is_latest
from annotations.review import review_counts
from annotations.setaside import count_set_aside


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> Optional[float]:
    """Cohen's kappa of two raters' labels on the same items; None when undefined (no items, or
    both raters always gave the one same label, so chance agreement is 1)."""
    if len(a) != len(b):
        raise ValueError(f"Rater label lists differ in length: {len(a)} vs {len(b)}")
    if not a:
        return None
    # Lazy: importing sklearn takes about a second, and only stats need it.
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():  # undefined kappa is reported as None instead
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score(list(a), list(b), labels=list(LABELS)))
    return kappa if math.isfinite(kappa) else None


def fleiss_kappa(votes: Sequence[Sequence[int]]) -> Optional[float]:
    """Fleiss' kappa from per-item vote counts (one row per item, one column per label).

    Items may have different numbers of raters (>= 2 each): P_i = sum_j n_ij (n_ij - 1) /
    (n_i (n_i - 1)), P_e = sum_j p_j^2 with p_j the pooled share of label j; with a fixed
    number of raters this is Fleiss' (1971) statistic. None when undefined.
    """
    rows = [list(r) for r in votes if sum(r) >= 2]
    if not rows:
        return None
    p_bar = sum(sum(n * (n - 1) for n in r) / (sum(r) * (sum(r) - 1)) for r in rows) / len(rows)
    total = sum(sum(r) for r in rows)
    p_e = sum((sum(r[j] for r in rows) / total) ** 2 for j in range(len(rows[0])))
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def _pairwise_cohen(by_post: dict[int, dict[str, str]]) -> list[dict[str, Any]]:
    names = sorted({name for labels in by_post.values() for name in labels})
    pairs = []
    for a, b in itertools.combinations(names, 2):
        common = [labels for labels in by_post.values() if a in labels and b in labels]
        if common:
            kappa = cohen_kappa([c[a] for c in common], [c[b] for c in common])
            pairs.append({"annotators": [a, b], "n_posts": len(common), "kappa": kappa})
    return pairs


def _model_agreement(rows: Sequence[Any]) -> dict[str, Any]:
    pairs = [(name, label, model) for _, name, label, model in rows if model is not None]
    if not pairs:
        return {"n": 0, "fraction": None, "kappa": None, "by_annotator": {}}
    per: dict[str, list[bool]] = defaultdict(list)
    for name, label, model in pairs:
        per[name].append(label == model)
    return {
        "n": len(pairs),
        "fraction": sum(sum(v) for v in per.values()) / len(pairs),
        "kappa": cohen_kappa([p[1] for p in pairs], [p[2] for p in pairs]),
        "by_annotator": {name: sum(v) / len(v) for name, v in sorted(per.items())},
    }


def _queue_counts(session: Session) -> tuple[int, dict[str, dict[str, int]]]:
    """(posts not set aside, {annotator: {'label': n, 'skip': n}} of verdicts in force on them)."""
    total = session.scalar(select(func.count()).select_from(Post).where(Post.set_aside.is_(None))) or 0
    rows = session.execute(
        select(Annotator.name, Annotation.kind, func.count())
        .join(Annotation, Annotation.annotator_id == Annotator.id)
        .join(Post, Post.id == Annotation.post_id)
        .where(Annotation.kind != "retract", Post.set_aside.is_(None), is_latest(Annotation))
        .group_by(Annotator.name, Annotation.kind)
    ).all()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for name, kind, n in rows:
        counts[name][kind] = n
    return total, counts


def stats(session: Session) -> dict[str, Any]:
    """Counts per label and per annotator, inter-annotator kappa, and annotator-vs-model agreement.

    `model_agreement` compares every label in force with the post's latest prediction. Per
    annotator: labels and skips in force (on every post), `by_label`, `remaining` (posts not set
    aside that they have no verdict on, as queue.progress counts them) and `adjudications` (posts
    whose adjudication in force is theirs). `review` is review_counts(); `n_set_aside` the posts out
    of the queues.
    """
    labelled = effective_labels_stmt().subquery()
    rows = session.execute(
        select(labelled.c.post_id, labelled.c.name, labelled.c.label, Prediction.label)
        .join(Post, Post.id == labelled.c.post_id)
        .outerjoin(Prediction, Prediction.id == Post.latest_prediction_id)
    ).all()
    skips = session.execute(
        select(Annotator.name, func.count())
        .join(Annotation, Annotation.annotator_id == Annotator.id)
        .where(Annotation.kind == "skip", is_latest(Annotation))
        .group_by(Annotator.name)
    ).all()
    by_post: dict[int, dict[str, str]] = defaultdict(dict)
    per_annotator: dict[str, Counter[str]] = defaultdict(Counter)
    for post_id, name, label, _ in rows:
        by_post[post_id][name] = label
        per_annotator[name][label] += 1
    skipped = dict(skips)
    total, in_queue = _queue_counts(session)
    adjudicated = Counter(name for _, name in session.execute(adjudications_in_force_stmt()))
    pairs = _pairwise_cohen(by_post)
    kappas = [p["kappa"] for p in pairs if p["kappa"] is not None]
    multi = [[Counter(labels.values())[lab] for lab in LABELS] for labels in by_post.values() if len(labels) >= 2]
    return {
        "n_posts": session.scalar(select(func.count()).select_from(Post)),
        "n_labelled_posts": len(by_post),
        "labels": {lab: sum(c[lab] for c in per_annotator.values()) for lab in LABELS},
        "n_set_aside": count_set_aside(session),
        "annotators": {
            name: {"labels": sum(per_annotator[name].values()), "skips": skipped.get(name, 0),
                   "by_label": {lab: per_annotator[name][lab] for lab in LABELS},
                   "remaining": total - sum(in_queue[name].values()), "adjudications": adjudicated.get(name, 0)}
            for name in sorted(set(per_annotator) | set(skipped) | set(adjudicated))
        },
        "review": review_counts(session),
        "cohen_pairs": pairs,
        "cohen_kappa": sum(kappas) / len(kappas) if kappas else None,  # mean over annotator pairs
        "fleiss_kappa": fleiss_kappa(multi),
        "fleiss_n_posts": len(multi),
        "model_agreement": _model_agreement(rows),
    }
