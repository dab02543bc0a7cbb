"""Explanations: heatmaps at the image's size, released hooks, repeatable results, every fusion, IG completeness."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmsa_core import list_models, save_checkpoint
from mmsa_core.data import InputError, load_mvsa, split
from mmsa_core.explain import Explanation, explain, list_cam_methods
from mmsa_core.explain.explainer import encode_post
from mmsa_core.explain.ig import integrated_gradients
from mmsa_core.predictor import Predictor

from .conftest import tiny_model


@pytest.fixture(scope="module")
def post(mvsa_dir):
    p = split(load_mvsa(mvsa_dir), "val")[0]
    return p.image, p.text


def no_hooks(module: torch.nn.Module) -> bool:
    return all(not (m._forward_hooks or m._backward_hooks or m._forward_pre_hooks or m._backward_pre_hooks)
               for m in module.modules())


def test_heatmap_has_the_images_size_and_range(post):
    model = tiny_model("attention_concat").eval()
    e = explain(model, *post)
    w, h = Image.open(post[0]).size
    assert isinstance(e, Explanation)
    assert e.heatmap.shape == (h, w) and e.heatmap.dtype == np.float32
    assert 0.0 <= e.heatmap.min() and e.heatmap.max() <= 1.0
    assert e.heatmap.std() > 0.01  # not constant on a real image
    assert e.overlay.size == (w, h)
    left, top, right, bottom = e.crop_box
    assert 0 <= left < right <= w + 0.5 and 0 <= top < bottom <= h + 0.5
    assert e.probabilities.keys() == {"negative", "neutral", "positive"} and e.label == max(
        e.probabilities, key=e.probabilities.get)
    assert e.target == e.label and e.elapsed_ms > 0


def test_frozen_backbone_still_gets_a_heatmap(post):
    model = tiny_model("concat").eval()
    model.image_encoder.requires_grad_(False)
    e = explain(model, *post, method="GradCAM++", faithfulness=False)
    assert e.heatmap.max() > 0 and e.heatmap.std() > 0.01
    assert all(p.grad is None for p in model.parameters())  # backward's leftovers are cleared


@pytest.mark.parametrize("method", list_cam_methods())
def test_every_cam_method_runs_and_releases_its_hooks(post, method):
    model = tiny_model("attention_add").eval()
    e = explain(model, *post, method=method, faithfulness=False)
    assert e.method == method and e.heatmap.shape == Image.open(post[0]).size[::-1]
    assert np.isfinite(e.heatmap).all() and 0.0 <= e.heatmap.min() <= e.heatmap.max() <= 1.0
    assert no_hooks(model)


def test_no_hook_survives_even_an_error(post):
    model = tiny_model("concat").eval()
    explain(model, *post)
    target = model.image_encoder.target_layer
    assert not target._forward_hooks and not target._backward_hooks and no_hooks(model)
    with pytest.raises(ValueError, match=r"Unknown target 'happy'; choose from \['negative'"):
        explain(model, *post, target="happy")
    assert no_hooks(model)


def test_hooks_never_sit_on_the_shared_layer(post):
    """The CAM hooks a private tap, so a predict() running meanwhile on the same model is not recorded."""
    model = tiny_model("concat").eval()
    layer = model.image_encoder.target_layer
    seen = []
    handle = layer.register_forward_hook(lambda *_: seen.append(len(layer._forward_hooks)))
    try:
        explain(model, *post, method="GradCAM")
    finally:
        handle.remove()
    assert seen and set(seen) == {1}  # only this test's own hook, every time the layer ran


def test_concurrent_explanations_and_predictions_agree_with_serial_ones(mvsa_dir):
    """A UI serves several users from one model: threads must neither crash (concurrent zero_grad once
    segfaulted) nor see each other's activations or random state."""
    import threading

    model = tiny_model("attention_concat").eval()
    predictor = Predictor(model, device="cpu")
    posts = split(load_mvsa(mvsa_dir), "val")[:4]
    serial = [explain(model, p.image, p.text) for p in posts]
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(3):
                predictor.predict(posts[i].image, posts[i].text)
                results[i] = explain(model, posts[i].image, posts[i].text)
        except Exception as e:  # collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(posts))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    for i, e in enumerate(serial):
        assert np.array_equal(results[i].heatmap, e.heatmap) and results[i].word_scores == e.word_scores
        assert results[i].faithfulness == e.faithfulness
    assert no_hooks(model)


def test_unknown_method_lists_the_menu(post):
    with pytest.raises(ValueError, match=r"Unknown CAM method 'gradcan'; choose from \['GradCAM', 'GradCAM\+\+'"):
        explain(tiny_model("concat").eval(), *post, method="gradcan")


def test_explaining_twice_gives_the_same_result(post):
    model = tiny_model("mscmf").eval()
    a, b = explain(model, *post), explain(model, *post)
    assert np.array_equal(a.heatmap, b.heatmap)
    assert a.word_scores == b.word_scores and a.word_attention == b.word_attention
    assert a.faithfulness == b.faithfulness and a.modality == b.modality and a.notes == b.notes


def test_explanation_matches_the_prediction(post, tmp_path):
    model = tiny_model("transformer")
    path = save_checkpoint(model, tmp_path / "m.pt")
    predictor = Predictor.from_checkpoint(path, device="cpu")
    e, p = predictor.explain(*post), predictor.predict(*post)
    assert e.label == p.label and e.model == "m.pt"
    assert all(abs(e.probabilities[k] - p.probabilities[k]) < 1e-5 for k in p.probabilities)


def test_a_chosen_target_is_explained(post):
    model = tiny_model("concat").eval()
    e = explain(model, *post, target="negative")
    assert e.target == "negative"
    assert explain(model, *post, target=0).word_scores == e.word_scores


@pytest.mark.parametrize("fusion", list_models())
def test_every_fusion_explains_or_says_why_not(post, fusion):
    model = tiny_model(fusion).eval()
    e = explain(model, *post)
    views = e.modality
    assert abs(sum(views.shares.values()) - 1.0) < 1e-6
    assert views.fused == pytest.approx(e.probabilities)
    if fusion == "text_only":
        assert e.heatmap is None and e.overlay is None and any("ignores the image" in n for n in e.notes)
        assert views.shares == {"text": 1.0, "image": 0.0}
    else:
        assert e.heatmap.shape == Image.open(post[0]).size[::-1] and "image_road" in e.faithfulness
    if fusion == "image_only":
        assert e.word_scores is None and e.ig_delta is None and any("ignores the text" in n for n in e.notes)
    else:
        assert len(e.word_scores) == len(post[1].split()) and "words_comprehensiveness" in e.faithfulness
    attention = model(*Predictor(model, device="cpu").prepare(*[[x] for x in post])).text_attention
    assert (e.word_attention is None) == (attention is None)
    if e.word_attention is not None:
        assert 0 < sum(s for _, s in e.word_attention) <= 1 + 1e-4  # shares; the rest went to [CLS], [SEP]


@pytest.mark.parametrize("fusion", sorted(set(list_models()) - {"image_only"}))
def test_integrated_gradients_are_complete(post, fusion):
    """Sum of the word scores = logit(post) - logit(post with every word piece replaced by [PAD])."""
    model = tiny_model(fusion).eval()
    enc = encode_post(model, *post)
    target = int(enc.logits.argmax())
    scores, delta = integrated_gradients(model, enc.words, enc.regions, target, steps=64)
    ids = enc.words.input_ids.clone()
    ids[0, [t for t, w in enumerate(enc.words.token_word) if w >= 0]] = model.text_encoder.tokenizer.pad_token_id
    with torch.no_grad():
        base = model.head(model.text_encoder(ids, enc.words.mask), enc.regions).logits[0, target]
    gap = float(enc.logits[0, target] - base)
    assert abs(scores.sum() - gap) <= 1e-3 + 0.02 * abs(gap), (scores.sum(), gap)
    assert delta <= 1e-3 + 0.02 * abs(gap)


@pytest.mark.parametrize("fusion", sorted(list_models()))
def test_cutting_the_padding_keeps_the_logits(post, fusion):
    """Integrated gradients run on the real tokens only; every fusion must mask the padding."""
    model = tiny_model(fusion).eval()
    enc = encode_post(model, *post)
    n = int(enc.words.mask.sum())
    with torch.no_grad():
        short = model.head(model.text_encoder(enc.words.input_ids[:, :n], enc.words.mask[:, :n]), enc.regions)
    assert torch.allclose(short.logits, enc.logits, atol=1e-5)


def test_views_are_the_models_own(post):
    model = tiny_model("attention", modality_dropout=0.3).eval()
    e = explain(model, *post, method=None, faithfulness=False)
    batch = Predictor(model, device="cpu").prepare([post[0]], [post[1]])
    for view, probs in (("text", e.modality.text), ("image", e.modality.image)):
        expected = model(*batch, view=view).logits.softmax(-1)[0]
        assert list(probs.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    assert not any("approximate" in n for n in e.notes)  # trained with modality dropout


def test_an_ensemble_explains_like_one_model(post):
    """The shipped default is an ensemble of heads on shared frozen encoders: explained as one model."""
    from mmsa_core.ensemble import EnsembleClassifier

    members = [tiny_model("attention_concat"), tiny_model("concat"), tiny_model("cross_attention")]
    model = EnsembleClassifier(members).eval()
    e = explain(model, *post)
    expected = model(*Predictor(model, device="cpu").prepare([post[0]], [post[1]])).logits.softmax(-1)[0]
    assert list(e.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    assert e.heatmap.shape == Image.open(post[0]).size[::-1] and len(e.word_scores) == len(post[1].split())
    assert e.word_attention is not None and e.ig_delta < 0.05 and no_hooks(model)


def test_an_ensemble_with_fine_tuned_text_layers_explains_like_one_model(post):
    """Members that fine-tuned different top text layers: each head sees its own text features."""
    from mmsa_core.ensemble import EnsembleClassifier

    members = [tiny_model("attention_concat"), tiny_model("concat", text_trainable_layers=1)]
    model = EnsembleClassifier(members).eval()
    e = explain(model, *post, faithfulness=False)
    batch = Predictor(model, device="cpu").prepare([post[0]], [post[1]])
    expected = torch.stack([m(*batch).logits.softmax(-1)[0] for m in members]).mean(0)
    assert list(e.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
    assert len(e.word_scores) == len(post[1].split()) and no_hooks(model)


def test_bad_inputs_fail_clearly(post):
    model = tiny_model("concat").eval()
    with pytest.raises(InputError, match="text is empty"):
        explain(model, post[0], "   ")
    with pytest.raises(InputError, match="could not be read"):
        explain(model, b"not an image", "hello")
    assert no_hooks(model)


def test_training_mode_is_restored(post):
    model = tiny_model("concat").train()
    explain(model, *post, faithfulness=False)
    assert model.training and model.classifier.training


def test_a_model_with_a_mid_image_stage_predicts_but_refuses_to_explain(post):
    model = tiny_model("attention_concat", image_mid_stage=1).eval()
    pred = Predictor(model).predict(*post)
    assert pred.label in model.labels
    with pytest.raises(ValueError, match="image_mid_stage=1"):
        explain(model, *post)
