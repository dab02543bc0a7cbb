"""One post in, one ``Explanation`` out: heatmap, word scores, modality views and their faithfulness."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image

from ..data import check_text, load_image
from ..encoders import ImageFeatures, TextFeatures
from .cam import CLASS_AGNOSTIC, ImageToLogits, compute_cam, get_cam_method
from .faithfulness import image_faithfulness, top_words, word_faithfulness
from .geometry import crop_box, to_original
from .ig import integrated_gradients
from .modality import SINGLE_MODALITY, modality_views
from .overlay import overlay
from .result import Explanation
from .words import EncodedText, encode_text, to_words


@dataclass
class EncodedPost:
    """A post encoded once; every part of the explanation starts from here."""

    image: Image.Image  # the original RGB image
    pixels: torch.Tensor  # (1, 3, H, W) preprocessed
    below: torch.Tensor  # (1, C', h', w') image features under the CAM's target layer
    words: EncodedText
    text: TextFeatures  # (1, L, D) tokens
    regions: ImageFeatures  # (1, R, C) regions
    logits: torch.Tensor  # (1, C) fused
    text_attention: torch.Tensor | None  # (1, L) the fusion head's own attention, where it has one


@torch.no_grad()
def encode_post(model, image, text: str) -> EncodedPost:
    """Check and encode the inputs and run the fused model once."""
    img, text = load_image(image), check_text(text)
    device = next(model.parameters()).device
    enc = model.image_encoder
    if enc.mid_stage:  # the heatmap's layer would miss the mid stage's channels that the fusion reads
        raise ValueError(f"Explanations are not wired for models with image_mid_stage={enc.mid_stage} (a setting "
                         "screened in docs/results.md, not adopted); predict works, explain does not")
    pixels = enc.preprocess(img).unsqueeze(0).to(device)
    below = pixels
    for stage in enc.stages[:-1]:
        below = stage(below)
    regions = enc.features(enc.target_layer(below))
    words = encode_text(model.text_encoder, text)
    text_feats = model.text_encoder(words.input_ids.to(device), words.mask.to(device))
    out = model.head(text_feats, regions)
    return EncodedPost(img, pixels, below, words, text_feats, regions, out.logits, out.text_attention)


def resolve_target(target, labels: tuple[str, ...], predicted: int) -> int:
    """Class index for ``target``: None (the predicted class), a label name or an index."""
    if target is None:
        return predicted
    if isinstance(target, str) and target in labels:
        return labels.index(target)
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(labels):
        return target
    raise ValueError(f"Unknown target {target!r}; choose from {list(labels)} (or their indices, or None)")


def _heatmap(model, post: EncodedPost, target: int, method: str | None, alpha: float, faithful: bool,
             notes: list[str]) -> dict:
    """Heatmap at the original size, overlay and image faithfulness; empty where it does not apply."""
    if method is None:
        notes.append("No heatmap: no CAM method was asked for.")
        return {}
    if SINGLE_MODALITY.get(model.cfg.fusion) == "text":
        notes.append("No heatmap: a text_only model ignores the image, so no region can matter.")
        return {}
    name, _ = get_cam_method(method)
    wrapper = ImageToLogits(model, post.text, below=(post.pixels, post.below))
    cam = compute_cam(wrapper, post.pixels, target, name)  # (h, w) at input resolution
    if name in CLASS_AGNOSTIC:
        notes.append(f"{name} is class-agnostic: the heatmap is the same whatever the target class.")
    if float(cam.max()) == 0.0:
        notes.append(f"The {name} heatmap is flat: no region raises the class score at the target layer.")
    box = crop_box(model.image_encoder.preprocess, post.image.size)
    heat = to_original(cam, box, post.image.size)
    faith = image_faithfulness(wrapper, post.pixels, cam, target) if faithful else {}
    return {"method": name, "heatmap": heat, "crop_box": box, "faithfulness": faith,
            "overlay": overlay(post.image, heat, alpha, box=box)}


def _word_attention(model, post: EncodedPost, notes: list[str]) -> list[tuple[str, float]] | None:
    if post.text_attention is None:
        notes.append(f"No word attention: the {model.cfg.fusion} head has no attention over words.")
        return None
    whose = "the members' mean attention" if hasattr(model, "members") else "the fusion head's own attention"
    notes.append(f"Word attention is {whose} weight per word: where the head looked, not which way a word "
                 "pushed (see the signed word scores for that).")
    return to_words(post.words, post.text_attention[0].float().cpu().numpy())


def _words(model, post: EncodedPost, target: int, ig_steps: int, top_k: int, faithful: bool,
           notes: list[str]) -> dict:
    """Integrated-gradients word scores, their convergence delta and word faithfulness."""
    if SINGLE_MODALITY.get(model.cfg.fusion) == "image":
        notes.append("No word scores: an image_only model ignores the text, so no word can matter.")
        return {}
    token_scores, delta = integrated_gradients(model, post.words, post.regions, target, ig_steps)
    scores = to_words(post.words, token_scores)
    out = {"word_scores": scores, "ig_delta": delta, "faithfulness": {}}
    k = min(top_k, post.words.seen_words)
    if faithful and k > 0:
        chosen = top_words(scores, k, post.words.seen_words)
        out["faithfulness"] = word_faithfulness(model, post.words, post.regions, target, chosen)
    return out


def explain(model, image, text: str, method: str | None = "GradCAM", target: str | int | None = None, *,
            alpha: float = 0.5, ig_steps: int = 16, top_k: int = 3, faithfulness: bool = True,
            model_name: str = "model") -> Explanation:
    """Explain one post (image as path, bytes or PIL; its text) for ``target`` (default: the prediction).

    ``method`` is a CAM name from ``list_cam_methods()`` (None: no heatmap); ``alpha`` the overlay's
    opacity; ``ig_steps`` the integrated-gradients steps; ``top_k`` the words removed for the word
    faithfulness scores; ``faithfulness=False`` skips the perturbation scores (faster).
    """
    t0 = time.perf_counter()
    if method is not None:
        get_cam_method(method)  # an unknown name or a wrong opacity fails before any work
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    was_training = model.training
    model.eval()
    try:
        post = encode_post(model, image, text)
        probs = post.logits.softmax(-1)[0].float().cpu()
        labels = model.labels
        target_idx = resolve_target(target, labels, int(probs.argmax()))
        notes: list[str] = []
        heat = _heatmap(model, post, target_idx, method, alpha, faithfulness, notes)
        words = _words(model, post, target_idx, ig_steps, top_k, faithfulness, notes)
        attention = _word_attention(model, post, notes)
        views = modality_views(model, post.text, post.regions, target_idx)
    finally:
        model.train(was_training)
    return _assemble(model, post, probs, target_idx, heat, words, attention, views, notes, model_name, t0)


def _assemble(model, post, probs, target_idx, heat, words, attention, views, notes, model_name, t0):
    labels = model.labels
    if post.words.truncated_words:
        notes.append(f"{post.words.truncated_words} trailing word(s) lie beyond max_text_len="
                     f"{model.cfg.max_text_len} tokens: the model never read them (score 0).")
    if model.cfg.fusion not in SINGLE_MODALITY and model.cfg.modality_dropout == 0:
        notes.append("The text-only and image-only views are approximate: this model was not trained with "
                     "a missing modality (modality_dropout=0).")
    p = {lab: float(v) for lab, v in zip(labels, probs.tolist())}
    return Explanation(
        label=labels[int(probs.argmax())], probabilities=p, target=labels[target_idx],
        method=heat.get("method"), heatmap=heat.get("heatmap"), overlay=heat.get("overlay"),
        crop_box=heat.get("crop_box"), word_scores=words.get("word_scores"), word_attention=attention,
        truncated_words=post.words.truncated_words, modality=views,
        faithfulness={**heat.get("faithfulness", {}), **words.get("faithfulness", {})},
        ig_delta=words.get("ig_delta"), elapsed_ms=1000 * (time.perf_counter() - t0), notes=tuple(notes),
        model=model_name)
