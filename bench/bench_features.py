"""Time and memory to encode MVSA-Single posts with the frozen trunks (what building the feature cache costs).

    python bench/bench_features.py [--limit N] [--image-batch 8 32] [--out docs/bench_features.md]

Each stage runs in a fresh process, so its peak RSS (``os.wait4``) is its own: the text trunk once, the image
trunk once per ``--image-batch`` size (the first size is ``encode_images``'s default). "Peak over loading" is
the stage's peak RSS minus the RSS of the same process with the model loaded and nothing encoded yet: what
encoding adds, the outputs (float32) included.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, run_child  # noqa: E402


def _stage(stage: str, data_dir: str, limit: int, batch: int) -> dict:
    """One stage, in this process: its seconds, and the peak RSS (GB) with the model loaded, before encoding."""
    from mmsa_core import ModelConfig, MultimodalClassifier
    from mmsa_core.data import load_mvsa
    from mmsa_core.features import encode_images, encode_texts

    posts = load_mvsa(data_dir)
    posts = posts[:limit] if limit else posts
    model = MultimodalClassifier(ModelConfig()).eval()
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    t = time.perf_counter()
    if stage == "text":
        encode_texts(model, [p.text for p in posts])
    else:
        encode_images(model, [p.image for p in posts], batch_size=batch)
    return {"seconds": time.perf_counter() - t, "n": len(posts), "loaded_gb": loaded}


def _child(stage: str, a, batch: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--batch", str(batch), "--limit", str(a.limit),
           "--data-dir", a.data_dir]
    out, peak_gb = run_child(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    return {**json.loads(out.strip().splitlines()[-1]), "peak_gb": peak_gb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="encode only the first N posts")
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--image-batch", type=int, nargs="+", default=[8, 32], help="image batch sizes to time")
    ap.add_argument("--out")
    ap.add_argument("--stage", choices=["text", "image"], help=argparse.SUPPRESS)  # a child process's one stage
    ap.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.stage:
        print(json.dumps(_stage(a.stage, a.data_dir, a.limit, a.batch)))
        return
    rows = [("MiniLM text tokens (64 tokens, frozen)", _child("text", a))]
    rows += [(f"EfficientNet-Lite0 7x7x1280 map (decode + preprocess + CNN), batches of {b}", _child("image", a, b))
             for b in a.image_batch]
    args = (f" --limit {a.limit}" if a.limit else "") + " --image-batch " + " ".join(map(str, a.image_batch))
    md = [f"Command: `python bench/bench_features.py{args}` on {machine()}; {time.strftime('%Y-%m-%d')}.", "",
          "| stage | posts | total s | ms per post | peak RSS (GB) | peak over loading (GB) |",
          "|---|---|---|---|---|---|"]
    md += [f"| {what} | {r['n']} | {r['seconds']:.1f} | {1000 * r['seconds'] / r['n']:.1f} | {r['peak_gb']:.2f} | "
           f"{r['peak_gb'] - r['loaded_gb']:.2f} |" for what, r in rows]
    emit("\n".join(md), a.out)


if __name__ == "__main__":
    main()
