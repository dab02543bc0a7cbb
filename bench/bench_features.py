"""Time to encode all MVSA-Single posts with the frozen trunks (what building the feature cache costs).

    python bench/bench_features.py [--limit N] [--out docs/bench_features.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine  # noqa: E402
from mmsa_core import ModelConfig, MultimodalClassifier  # noqa: E402
from mmsa_core.data import load_mvsa  # noqa: E402
from mmsa_core.features import encode_images, encode_texts  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=0, help="encode only the first N posts")
    ap.add_argument("--data-dir", default="../shared/data/mvsa-single")
    ap.add_argument("--out")
    a = ap.parse_args()
    posts = load_mvsa(a.data_dir)
    posts = posts[: a.limit] if a.limit else posts
    model = MultimodalClassifier(ModelConfig()).eval()
    t = time.perf_counter()
    encode_texts(model, [p.text for p in posts])
    text_s = time.perf_counter() - t
    t = time.perf_counter()
    encode_images(model, [p.image for p in posts])
    image_s = time.perf_counter() - t
    n = len(posts)
    md = (f"Command: `python bench/bench_features.py{f' --limit {a.limit}' if a.limit else ''}` on {machine()}.\n\n"
          "| stage | posts | total s | ms per post |\n|---|---|---|---|\n"
          f"| MiniLM text tokens (64 tokens, frozen) | {n} | {text_s:.1f} | {1000 * text_s / n:.1f} |\n"
          f"| EfficientNet-Lite0 7x7x1280 map (decode + preprocess + CNN) | {n} | {image_s:.1f} | {1000 * image_s / n:.1f} |\n"
          f"| all | {n} | {text_s + image_s:.1f} | {1000 * (text_s + image_s) / n:.1f} |")
    emit(md, a.out)


if __name__ == "__main__":
    main()
