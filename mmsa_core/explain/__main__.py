"""Explain one post: heatmap overlay, coloured words, modality views and faithfulness scores.

    python -m mmsa_core.explain [CHECKPOINT] --image X.jpg --text "..." --out DIR [--method GradCAM]

Writes DIR/overlay.png, DIR/heatmap.png, DIR/explanation.html and DIR/explanation.json. Without a
checkpoint the shipped default model is used.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import InputError
from ..predictor import Predictor
from .cam import list_cam_methods
from .page import to_html
from .result import Explanation


def write_explanation(e: Explanation, out: str | Path) -> dict[str, Path]:
    """Write the overlay, the heatmap, the HTML page and the JSON scores into ``out``; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "explanation.html", "json": out / "explanation.json"}
    if e.overlay is not None:
        paths["overlay"] = out / "overlay.png"
        e.overlay.save(paths["overlay"])
        paths["heatmap"] = out / "heatmap.png"
        Image.fromarray((e.heatmap * 255).round().astype(np.uint8)).save(paths["heatmap"])
    paths["html"].write_text(to_html(e, "overlay.png" if e.overlay is not None else None), encoding="utf-8")
    paths["json"].write_text(json.dumps(e.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m mmsa_core.explain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="checkpoint (default: the shipped model)")
    ap.add_argument("--image", required=True, help="the post's image (JPEG, PNG, GIF or WebP)")
    ap.add_argument("--text", required=True, help="the post's text")
    ap.add_argument("--out", required=True, help="folder for overlay.png, explanation.html and .json")
    ap.add_argument("--method", default="GradCAM", help=f"CAM method, one of {list_cam_methods()}")
    ap.add_argument("--target", help="label to explain (default: the predicted one)")
    ap.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity in the overlay")
    ap.add_argument("--ig-steps", type=int, default=16, help="integrated-gradients steps")
    ap.add_argument("--top-k", type=int, default=3, help="words removed for the word faithfulness scores")
    ap.add_argument("--no-faithfulness", action="store_true", help="skip the perturbation scores (faster)")
    ap.add_argument("--device", default="auto")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        predictor = Predictor.from_checkpoint(args.checkpoint, args.device)
        e = predictor.explain(args.image, args.text, method=args.method, target=args.target, alpha=args.alpha,
                              ig_steps=args.ig_steps, top_k=args.top_k, faithfulness=not args.no_faithfulness)
    except (InputError, ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    paths = write_explanation(e, args.out)
    print(f"{e.label} ({e.confidence:.2f}); explained {e.target} in {e.elapsed_ms:.0f} ms")
    for kind, path in paths.items():
        print(f"  {kind}: {path}")


if __name__ == "__main__":
    main()
