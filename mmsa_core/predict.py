"""Predict every row of a CSV (columns ``id,text``; images at ``DIR/<id>.jpg``).

    python -m mmsa_core.predict [CHECKPOINT] --posts POSTS.csv --images DIR --out PREDS.csv

Writes ``id,label,p_negative,p_neutral,p_positive``; this is also how the held-back test split is scored.
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from tqdm.auto import tqdm

from .data import InputError, read_csv_rows
from .predictor import Predictor

log = logging.getLogger(__name__)


def predict_csv(predictor: Predictor, posts_csv: str | Path, image_dir: str | Path, out: str | Path,
                batch_size: int = 16, split: str | None = None) -> int:
    """Predict the CSV's rows (optionally only those of one ``split`` column value); returns the row count."""
    rows = read_csv_rows(posts_csv, required=("id", "text"))
    if split:
        if rows and "split" not in rows[0]:
            raise InputError(f"{posts_csv} has no 'split' column to filter on")
        rows = [r for r in rows if r["split"] == split]
    image_dir = Path(image_dir)
    missing = [r["id"] for r in rows if not (image_dir / f"{r['id']}.jpg").exists()]
    if missing:
        raise InputError(f"{len(missing)} image(s) missing in {image_dir}, e.g. {missing[0]}.jpg")
    labels = predictor.labels
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"] + [f"p_{lab}" for lab in labels])
        for i in tqdm(range(0, len(rows), batch_size), desc="predict"):
            chunk = rows[i:i + batch_size]
            try:
                preds = predictor.predict_batch([str(image_dir / f"{r['id']}.jpg") for r in chunk],
                                                [r["text"] for r in chunk], batch_size)
            except InputError as e:
                raise InputError(f"rows {chunk[0]['id']}..{chunk[-1]['id']}: {e}") from e
            for r, p in zip(chunk, preds):
                w.writerow([r["id"], p.label] + [f"{p.probabilities[lab]:.6f}" for lab in labels])
    return len(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint (default: the shipped model)")
    ap.add_argument("--posts", required=True, help="CSV with columns id,text")
    ap.add_argument("--images", required=True, help="folder with <id>.jpg")
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", help="only rows whose 'split' column equals this (e.g. test)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        n = predict_csv(Predictor.from_checkpoint(args.checkpoint, args.device), args.posts, args.images,
                        args.out, args.batch_size, args.split)
    except InputError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {n} predictions to {args.out}")


if __name__ == "__main__":
    main()
