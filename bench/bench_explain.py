"""Benchmark explanations: latency, memory over many calls, and faithfulness against random baselines.

    .venv/bin/python bench/bench_explain.py [CHECKPOINT] --out bench/explain.md

1. Latency: p50/p95 of one post's predict + GradCAM + integrated gradients (the issue's target), and of a
   full explanation with the faithfulness scores, on ``--latency-posts`` val posts after warm-up.
2. Memory: resident set size over ``--memory-runs`` consecutive explanations (flat = hooks released).
3. Faithfulness on ``--faith-posts`` val posts: GradCAM vs a random heatmap on ROAD (pixels removed at
   ``--fractions``), and integrated-gradients words vs random words (and attention words, where the
   model has them) on comprehensiveness and sufficiency at top-k. Also: how often the text-only and
   image-only views agree with MVSA's per-modality labels.

A count of 0 skips its section. Prints Markdown; ``--out FILE`` also writes it there. Linux only (RSS
from /proc).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_core.data import load_mvsa, read_csv_rows, split  # noqa: E402
from mmsa_core.explain.cam import ImageToLogits, compute_cam  # noqa: E402
from mmsa_core.explain.explainer import encode_post  # noqa: E402
from mmsa_core.explain.faithfulness import image_faithfulness, top_words, word_faithfulness  # noqa: E402
from mmsa_core.explain.ig import integrated_gradients  # noqa: E402
from mmsa_core.explain.modality import modality_views  # noqa: E402
from mmsa_core.explain.words import to_words  # noqa: E402
from mmsa_core.predictor import Predictor  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs), q))


def latency(predictor: Predictor, posts, warmup: int, ig_steps: int) -> list[str]:
    for p in posts[:warmup]:
        predictor.explain(p.image, p.text, ig_steps=ig_steps)
    rows = []
    for name, kw in (("predict only", None), ("predict + GradCAM + IG", dict(faithfulness=False)),
                     ("+ faithfulness scores (default call)", dict(faithfulness=True))):
        ms = []
        for p in posts[warmup:]:
            t0 = time.perf_counter()
            if kw is None:
                predictor.predict(p.image, p.text)
            else:
                predictor.explain(p.image, p.text, method="GradCAM", ig_steps=ig_steps, **kw)
            ms.append(1000 * (time.perf_counter() - t0))
        rows.append(f"| {name} | {len(ms)} | {pct(ms, 50):.0f} | {pct(ms, 95):.0f} | {max(ms):.0f} |")
    return ["| call (one post) | posts | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|", *rows]


def memory(predictor: Predictor, posts, runs: int, ig_steps: int) -> list[str]:
    marks, rss = {10, runs // 4, runs // 2, 3 * runs // 4, runs}, {}
    base = rss_mb()
    for i in range(1, runs + 1):
        p = posts[i % len(posts)]
        predictor.explain(p.image, p.text, ig_steps=ig_steps, faithfulness=False)
        if i in marks:
            rss[i] = rss_mb()
    n = sorted(rss)
    half = [k for k in n if k >= runs // 2]
    slope = np.polyfit(half, [rss[k] for k in half], 1)[0] * 100 if len(half) > 1 else float("nan")
    hooks = sum(len(m._forward_hooks) + len(m._backward_hooks) for m in predictor.model.modules())
    return ["| explanations | " + " | ".join(str(k) for k in n) + " |", "|---|" + "---:|" * len(n),
            "| RSS MB | " + " | ".join(f"{rss[k]:.0f}" for k in n) + " |", "",
            f"RSS before: {base:.0f} MB; growth over the second half: {slope:+.1f} MB per 100 explanations; "
            f"hooks left on the model afterwards: {hooks}."]


def random_heatmap(cam_shape, grid: tuple[int, int], rng) -> np.ndarray:
    """Uniform noise on the CAM's own grid, upsampled like a CAM: a fair random baseline."""
    small = rng.random(grid).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize(cam_shape[::-1], Image.BILINEAR), dtype=np.float32)


def one_post(model, post, fractions, k, rng, ig_steps) -> dict[str, dict[str, float]]:
    """Faithfulness of GradCAM / random heatmaps and IG / attention / random words for one post."""
    enc = encode_post(model, post.image, post.text)
    target = int(enc.logits.argmax())
    wrapper = ImageToLogits(model, enc.text, below=(enc.pixels, enc.below))
    cam = compute_cam(wrapper, enc.pixels, target, "GradCAM")
    with torch.no_grad():
        grid = tuple(model.image_encoder.target_layer(enc.below).shape[-2:])  # (h, w) of the CAM's layer
    out = {"gradcam": image_faithfulness(wrapper, enc.pixels, cam, target, fractions),
           "random heatmap": image_faithfulness(wrapper, enc.pixels, random_heatmap(cam.shape, grid, rng),
                                                target, fractions)}
    seen = enc.words.seen_words
    kk = min(k, seen)
    if kk == 0:
        return out
    scores, delta = integrated_gradients(model, enc.words, enc.regions, target, ig_steps)
    out["ig"] = {"relative_delta": delta / max(abs(float(scores.sum())), 1e-6)}
    words = {"IG words": top_words(to_words(enc.words, scores), kk, seen),
             "random words": set(rng.choice(seen, kk, replace=False).tolist())}
    if enc.text_attention is not None:
        words["attention words"] = top_words(to_words(enc.words, enc.text_attention[0].cpu().numpy()), kk, seen)
    for name, chosen in words.items():
        out[name] = word_faithfulness(model, enc.words, enc.regions, target, chosen)
    views = modality_views(model, enc.text, enc.regions, target)
    out["views"] = {"text": views.text_label, "image": views.image_label}
    return out


def mean_sem(xs) -> str:
    xs = np.asarray(xs, dtype=float)
    return f"{xs.mean():+.4f} ± {xs.std(ddof=1) / np.sqrt(len(xs)):.4f}" if len(xs) > 1 else f"{xs.mean():+.4f}"


def faithfulness_table(results: list[dict], pairs) -> list[str]:
    lines = ["| explanation | score (mean ± s.e.) | baseline | score (mean ± s.e.) | explanation better on |",
             "|---|---:|---|---:|---:|"]
    for metric, ours, base, higher in pairs:
        both = [r for r in results if ours in r and base in r]
        a, b = [r[ours][metric] for r in both], [r[base][metric] for r in both]
        if not both:
            continue
        wins = np.mean([(x > y) if higher else (x < y) for x, y in zip(a, b)])
        lines.append(f"| {ours}: {metric} ({'higher' if higher else 'lower'} is better) | {mean_sem(a)} | {base} "
                     f"| {mean_sem(b)} | {wins:.0%} of {len(both)} posts |")
    return lines


def view_agreement(results: list[dict], posts, data_dir: str) -> str:
    rows = {r["id"]: r for r in read_csv_rows(Path(data_dir) / "posts.csv", ("id", "text_label", "image_label"))}
    text = [r["views"]["text"] == rows[p.id]["text_label"] for r, p in zip(results, posts) if "views" in r]
    image = [r["views"]["image"] == rows[p.id]["image_label"] for r, p in zip(results, posts) if "views" in r]
    if not text:
        return ""
    return (f"Modality views vs MVSA's per-modality labels ({len(text)} posts): the text-only view matches "
            f"`text_label` on {np.mean(text):.0%}, the image-only view matches `image_label` on {np.mean(image):.0%}.")


def faithfulness(model, posts, fractions, k, ig_steps, data_dir) -> list[str]:
    rng = np.random.default_rng(0)
    results = []
    for i, p in enumerate(posts):
        results.append(one_post(model, p, fractions, k, rng, ig_steps))
        if (i + 1) % 10 == 0:
            print(f"  faithfulness: {i + 1}/{len(posts)} posts", file=sys.stderr)
    pairs = [("image_road", "gradcam", "random heatmap", True),
             ("image_road_morf", "gradcam", "random heatmap", False),
             ("image_road_lerf", "gradcam", "random heatmap", True),
             ("words_comprehensiveness", "IG words", "random words", True),
             ("words_sufficiency", "IG words", "random words", False),
             ("words_comprehensiveness", "attention words", "random words", True),
             ("words_sufficiency", "attention words", "random words", False)]
    rel = [r["ig"]["relative_delta"] for r in results if "ig" in r]
    ig = (f"Integrated gradients ({ig_steps} steps): convergence delta / |sum of attributions| has median "
          f"{np.median(rel):.2%} and 95th percentile {pct(rel, 95):.2%} over {len(rel)} posts.")
    return [*faithfulness_table(results, pairs), "", ig, "", view_agreement(results, posts, data_dir)]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint (default: the shipped model)")
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/mvsa-single"))
    ap.add_argument("--latency-posts", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--memory-runs", type=int, default=200)
    ap.add_argument("--faith-posts", type=int, default=100)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--ig-steps", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--out", help="also write the Markdown here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    predictor = Predictor.from_checkpoint(args.checkpoint, device="cpu")
    val = split(load_mvsa(args.data_dir), "val")
    cmd = "python bench/bench_explain.py " + " ".join(sys.argv[1:] if argv is None else argv)
    sha = predictor.meta.get("sha256", "")[:12]
    md = [f"### Explanation benchmark: `{predictor.name}` ({predictor.model.cfg.fusion}, sha256 {sha}…)", "",
          f"`{cmd}` on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads; load average at start "
          f"{os.getloadavg()[0]:.1f}; IG {args.ig_steps} steps; {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    t0 = time.time()
    if args.latency_posts:
        md += ["#### Latency", "", *latency(predictor, val[: args.warmup + args.latency_posts], args.warmup,
                                            args.ig_steps), ""]
    if args.memory_runs:
        md += ["#### Memory", "", *memory(predictor, val[:50], args.memory_runs, args.ig_steps), ""]
    if args.faith_posts:
        fr = ", ".join(f"{f:.0%}" for f in args.fractions)
        md += ["#### Faithfulness", "",
               f"First {args.faith_posts} val posts, explained class = predicted class; ROAD removes {fr} of "
               f"the pixels; words: top-{args.top_k}.", "",
               *faithfulness(predictor.model, val[: args.faith_posts], tuple(args.fractions), args.top_k,
                             args.ig_steps, args.data_dir), ""]
    md.append(f"Total bench time: {time.time() - t0:.0f} s; load average at the end {os.getloadavg()[0]:.1f}.")
    text = "\n".join(md)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
