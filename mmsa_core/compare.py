"""Train each registered model with several seeds and write a results table (mean ± sd on val).

    python -m mmsa_core.compare --seeds 0 1 2 --out docs/results.md [--models concat mscmf] [--text-layers 0]

The table replaces the block between ``<!-- compare:NAME:start -->`` and ``<!-- compare:NAME:end -->`` in the
output file, so other sections of the file stay as they are.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from .checkpoint import read_checkpoint
from .config import ModelConfig, TrainConfig
from .fusion import list_fusions
from .train import train

log = logging.getLogger(__name__)


def run(models: list[str], seeds: list[int], mcfg_kw: dict, tcfg_kw: dict, save_dir: str | None = None) -> list[dict]:
    rows = []
    for name in models:
        for seed in seeds:
            kw = dict(mcfg_kw)
            if name == "mscmf" and "mlm_weight" not in kw:
                kw["mlm_weight"] = 0.1  # the seed paper trains mscmf with its auxiliary loss
            out = Path(save_dir) / f"{name}-s{seed}.pt" if save_dir else None
            if out is not None and out.exists():  # resume: a run already saved counts as done
                rec = read_checkpoint(out)
            else:
                _, rec = train(ModelConfig(fusion=name, **kw), TrainConfig(seed=seed, **tcfg_kw), out, progress=False)
            v = rec["metrics"]["val"]
            rows.append({"model": name, "seed": seed, "epochs_run": len(rec["history"]),
                         "max_epochs": rec["train_config"]["epochs"], "accuracy": v["accuracy"],
                         "weighted_f1": v["weighted_f1"],
                         "macro_f1": v["macro_f1"], "neutral_recall": v["per_class"]["neutral"]["recall"],
                         "epoch": v["epoch"], "params": rec["trainable_params"], "seconds": rec["train_seconds"]})
            log.info("%s seed %d: acc %.2f wF1 %.2f", name, seed, v["accuracy"], v["weighted_f1"])
    return rows


def to_markdown(rows: list[dict]) -> str:
    def ms(vals, scale=1.0):
        a = np.array(vals) * scale
        return f"{a.mean():.2f} ± {a.std(ddof=1) if len(a) > 1 else 0:.2f}"

    lines = ["| model | val accuracy | val weighted F1 | val macro F1 | neutral recall | best seed acc / wF1 "
             "| trainable params | train s (median) | epochs run / max |", "|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        best = max(rs, key=lambda r: r["weighted_f1"])
        lines.append(f"| `{name}` | {ms([r['accuracy'] for r in rs])} | {ms([r['weighted_f1'] for r in rs])} | "
                     f"{ms([r['macro_f1'] for r in rs])} | {ms([r['neutral_recall'] for r in rs])} | "
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help=f"default: all of {list_fusions()}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default="docs/results.md")
    ap.add_argument("--block", default="frozen", help="name of the table's block in the output file")
    ap.add_argument("--text-layers", type=int, default=0)
    ap.add_argument("--loss", default="ce")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--json", help="also write the per-run rows here")
    ap.add_argument("--save-dir", help="keep every run's checkpoint here (e.g. for an ensemble); runs already "
                    "saved there are read back instead of trained again")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    models = args.models or list_fusions()
    t0 = time.perf_counter()
    rows = run(models, args.seeds, {"text_trainable_layers": args.text_layers},
               {"loss": args.loss, "epochs": args.epochs, "lr": args.lr, "data_dir": args.data_dir,
                "patience": args.patience}, args.save_dir)
    cmd = ("python -m mmsa_core.compare " + " ".join(argv if argv is not None else __import__("sys").argv[1:])).strip()
    body = (f"Command: `{cmd}` ({len(args.seeds)} seeds, {time.perf_counter() - t0:.0f} s in all on this machine).\n\n"
            + to_markdown(rows))
    write_block(Path(args.out), args.block, body)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
