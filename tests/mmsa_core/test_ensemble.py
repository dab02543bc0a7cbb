import numpy as np
import pytest
import torch

from mmsa_core import load_model, save_checkpoint
from mmsa_core.features import FeatureSet, predict_probs
from mmsa_core.ensemble import greedy_select, save_ensemble

from .conftest import tiny_model
from .test_models import batch


def ensemble_of(members, tmp_path, name: str, n: int = 4):
    """The members saved and loaded back as one ensemble (files ``<name><i>.pt``), a batch of ``n`` posts,
    and the members' averaged probabilities on it: what the ensemble must reproduce."""
    pixels, ids, mask = batch(members[0], n)
    with torch.no_grad():
        expected = torch.stack([m(pixels, ids, mask).logits.softmax(-1) for m in members]).mean(0)
    paths = [save_checkpoint(m, tmp_path / f"{name}{i}.pt") for i, m in enumerate(members)]
    model, meta = load_model(save_ensemble(paths, tmp_path / f"{name}.pt"))
    return model, meta, (pixels, ids, mask), expected


def test_ensemble_averages_member_probabilities_and_shares_the_trunk(tmp_path):
    members = [tiny_model("concat").eval(), tiny_model("concat", image_encoder="tiny-cnn", max_text_len=16).eval()]
    with pytest.raises(ValueError, match="share encoders"):  # different inputs cannot share a trunk
        save_ensemble([save_checkpoint(m, tmp_path / f"m{i}.pt") for i, m in enumerate(members)], tmp_path / "x.pt")
        load_model(tmp_path / "x.pt")
    members = [tiny_model("concat").eval(), tiny_model("attention_add").eval()]
    model, meta, (pixels, ids, mask), expected = ensemble_of(members, tmp_path, "k")
    with torch.no_grad():
        got = model(pixels, ids, mask).logits.softmax(-1)
    assert torch.allclose(got, expected, atol=1e-6)
    assert model.members[1].image_encoder.stages[0] is model.members[0].image_encoder.stages[0]
    assert [m["source"] for m in meta["members"]] == ["k0.pt", "k1.pt"]


def test_greedy_selection_picks_complementary_members():
    y = np.array([0, 1, 2, 0])
    good = np.eye(3)[[0, 1, 2, 1]] * 0.9 + 0.03
    other = np.eye(3)[[0, 2, 2, 0]] * 0.6 + 0.1
    bad = np.eye(3)[[2, 2, 1, 1]] * 0.9 + 0.03
    chosen = greedy_select([bad, good, other], y)
    assert chosen[0] == 1 and 0 not in chosen


def test_ensemble_of_frozen_members_exposes_the_head_seam(tmp_path):
    members = [tiny_model("attention_concat").eval(), tiny_model("cross_attention").eval()]
    model, _ = load_model(save_ensemble([save_checkpoint(m, tmp_path / f"h{i}.pt") for i, m in enumerate(members)],
                                        tmp_path / "e.pt"))
    pixels, ids, mask = batch(members[0], 3)
    with torch.no_grad():
        text, image = model.text_encoder(ids, mask), model.image_encoder(pixels)
        assert torch.allclose(model.head(text, image).logits, model(pixels, ids, mask).logits, atol=1e-6)
        assert model.head(text, image).text_attention.shape == ids.shape
    assert model.cfg.fusion == "ensemble:attention_concat+cross_attention"


def test_members_that_fine_tuned_text_layers_share_only_what_stayed_frozen(tmp_path):
    members = [tiny_model("concat").eval(), tiny_model("mscmf", text_trainable_layers=1).eval(),
               tiny_model("attention_concat").eval()]
    with torch.no_grad():  # make the fine-tuned layer really differ from the pretrained one
        for p in members[1].text_encoder.layers[-1].parameters():
            p.add_(0.05 * torch.randn_like(p))
    model, _, (pixels, ids, mask), expected = ensemble_of(members, tmp_path, "f")
    enc = model.text_encoder
    assert enc.split == members[1].text_encoder.split and len(enc.tops) == 2  # the frozen top once, one own
    assert model.members[0].text_encoder.layers[-1] is model.members[2].text_encoder.layers[-1]
    assert model.members[1].text_encoder.layers[-1] is not model.members[0].text_encoder.layers[-1]
    assert model.members[1].text_encoder.layers[0] is model.members[0].text_encoder.layers[0]
    with torch.no_grad():
        got = model(pixels, ids, mask).logits.softmax(-1)
        text, image = enc(ids, mask), model.image_encoder(pixels)
        assert torch.allclose(model.head(text, image).logits.softmax(-1), got, atol=1e-6)
        fs = FeatureSet(enc.forward_trunk(ids, mask), mask, ids, model.image_encoder.forward_trunk(pixels))
    assert torch.allclose(got, expected, atol=1e-5)
    assert np.allclose(predict_probs(model, fs), expected.numpy(), atol=1e-5)  # training's cached path


def test_a_half_precision_ensemble_loads_into_float32_and_predicts_alike(tmp_path):
    members = [tiny_model("concat").eval(), tiny_model("attention_add", text_trainable_layers=1).eval()]
    paths = [save_checkpoint(m, tmp_path / f"p{i}.pt") for i, m in enumerate(members)]
    full, _ = load_model(save_ensemble(paths, tmp_path / "full.pt"))
    half, meta = load_model(save_ensemble(paths, tmp_path / "half.pt", storage="float16"))
    assert meta["stored_dtype"] == "float16" and all(p.dtype == torch.float32 for p in half.parameters())
    assert (tmp_path / "half.pt").stat().st_size < 0.7 * (tmp_path / "full.pt").stat().st_size
    pixels, ids, mask = batch(members[0], 4)
    with torch.no_grad():
        assert torch.allclose(half(pixels, ids, mask).logits.softmax(-1), full(pixels, ids, mask).logits.softmax(-1),
                              atol=2e-3)


def test_int8_delta_storage_keeps_predictions_and_shrinks_fine_tuned_members(tmp_path):
    from mmsa_core import ModelConfig, MultimodalClassifier

    torch.manual_seed(0)
    model = MultimodalClassifier(ModelConfig(fusion="attention_concat", text_trainable_layers=2,
                                             image_trainable_blocks=1)).eval()
    with torch.no_grad():  # fine-tuning moves the pretrained weights a little
        for layer in model.text_encoder.layers[-2:]:
            for p in layer.parameters():
                p.add_(0.01 * p.abs().mean() * torch.randn_like(p))
    path = save_checkpoint(model, tmp_path / "ft.pt")
    half, _ = load_model(save_ensemble([path], tmp_path / "half.pt", storage="float16"))
    small, meta = load_model(save_ensemble([path], tmp_path / "int8.pt", storage="int8-delta"))
    assert meta["stored_dtype"] == "int8-delta"
    assert type(small) is MultimodalClassifier  # one model is stored as a plain (compact) checkpoint
    assert (tmp_path / "int8.pt").stat().st_size < 0.6 * (tmp_path / "half.pt").stat().st_size
    stored = torch.load(tmp_path / "int8.pt", weights_only=True)["state_dict"]
    deltas = [k for k, v in stored.items() if isinstance(v, dict)]
    assert any(".layer.5." in k for k in deltas) and not any(k.startswith(("fusion.", "classifier.")) for k in deltas)
    pixels = torch.randn(4, 3, 224, 224)
    tok = model.text_encoder.tokenize(["what a day", "so sad", "fine I guess", "lovely cats"])
    with torch.no_grad():
        want = model(pixels, tok["input_ids"], tok["attention_mask"]).logits.softmax(-1)
        assert torch.allclose(small(pixels, tok["input_ids"], tok["attention_mask"]).logits.softmax(-1), want, atol=2e-3)
        assert torch.allclose(half(pixels, tok["input_ids"], tok["attention_mask"]).logits.softmax(-1), want, atol=2e-3)


def test_members_with_their_own_cnn_stages_run_side_by_side_and_explain(tmp_path):
    from mmsa_core.ensemble import EnsembleImageEncoder
    from mmsa_core.explain import explain
    from PIL import Image

    members = [tiny_model("attention_concat", image_trainable_blocks=1, text_trainable_layers=1).eval(),
               tiny_model("concat", image_trainable_blocks=1).eval(), tiny_model("attention_add").eval()]
    with torch.no_grad():  # the fine-tuned stages really differ from the pretrained ones
        for m in members[:2]:
            for p in m.image_encoder.stages[-1].parameters():
                p.add_(0.1 * torch.randn_like(p))
    model, _, (pixels, ids, mask), expected = ensemble_of(members, tmp_path, "i", n=3)
    enc = model.image_encoder
    assert isinstance(enc, EnsembleImageEncoder) and enc.dim == 3 * members[0].image_encoder.dim
    assert enc.stages[0] is model.members[2].image_encoder.stages[0]  # the frozen stem runs once
    with torch.no_grad():
        assert torch.allclose(model(pixels, ids, mask).logits.softmax(-1), expected, atol=1e-5)
        fs = FeatureSet(model.text_encoder.forward_trunk(ids, mask), mask, ids, enc.forward_trunk(pixels))
    assert np.allclose(predict_probs(model, fs), expected.numpy(), atol=1e-5)  # the cached path too
    e = explain(model, Image.new("RGB", (80, 64), (200, 40, 40)), "what a day", "GradCAM", faithfulness=False)
    assert e.heatmap.shape == (64, 80) and np.isfinite(e.heatmap).all()


def test_models_with_a_mid_image_stage_are_refused_as_members(tmp_path):
    members = [tiny_model("concat").eval(), tiny_model("concat", image_mid_stage=1).eval()]
    paths = [save_checkpoint(m, tmp_path / f"mid{i}.pt") for i, m in enumerate(members)]
    with pytest.raises(ValueError, match="image_mid_stage"):
        load_model(save_ensemble(paths, tmp_path / "mid.pt"))


def test_members_refit_on_val_are_packed_without_val_figures_and_evaluate_says_in_sample(tmp_path, mvsa_dir, capsys):
    from mmsa_core.checkpoint import read_checkpoint, trained_on_val
    from mmsa_core.ensemble import main as ensemble_main
    from mmsa_core.evaluate import main as evaluate_main

    refit = save_checkpoint(tiny_model(), tmp_path / "refit.pt", train_config={"train_on_val": True})
    plain = save_checkpoint(tiny_model(), tmp_path / "plain.pt", train_config={})
    ensemble_main([str(refit), str(plain), "--out", str(tmp_path / "both.pt"), "--data-dir", str(mvsa_dir)])
    both = read_checkpoint(tmp_path / "both.pt")
    assert trained_on_val(both) and "val" not in both["metrics"]  # one member saw val: no val figure at all
    assert "not scored" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="trained on MVSA val"):
        ensemble_main([str(refit), "--greedy", "--out", str(tmp_path / "g.pt"), "--data-dir", str(mvsa_dir)])
    assert not (tmp_path / "g.pt").exists()
    evaluate_main([str(refit), "--split", "val", "--data-dir", str(mvsa_dir), "--cache-dir", str(tmp_path / "c")])
    assert "in-sample" in capsys.readouterr().out
    evaluate_main([str(plain), "--split", "val", "--data-dir", str(mvsa_dir), "--cache-dir", str(tmp_path / "c")])
    assert "in-sample" not in capsys.readouterr().out


def test_a_weight_average_needs_runs_from_one_init_and_is_their_mean(tmp_path, mvsa_dir, capsys):
    from mmsa_core import ModelConfig, TrainConfig
    from mmsa_core.checkpoint import read_checkpoint
    from mmsa_core.ensemble import average_weights, main as ensemble_main
    from mmsa_core.model import MultimodalClassifier
    from mmsa_core.train import train

    from .conftest import TINY

    def run(seed, init_seed=-1, lr=1e-3, name=None):
        tc = TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=24, batch_size=8, cache_dir=str(tmp_path / "c"),
                         seed=seed, init_seed=init_seed, lr=lr)
        path = tmp_path / (name or f"s{seed}-i{init_seed}-lr{lr}.pt")
        if not path.exists():
            train(ModelConfig(fusion="concat", **TINY), tc, path, progress=False)
        return path

    # init_seed fixes where training starts: with nothing learned (lr 0), seeds 0 and 1 end where they began
    frozen = [read_checkpoint(run(s, init_seed=0, lr=0.0))["state_dict"] for s in (0, 1)]
    assert all(torch.equal(frozen[0][k], frozen[1][k]) for k in frozen[0])
    apart = [read_checkpoint(run(s, lr=0.0))["state_dict"] for s in (0, 1)]
    assert not torch.equal(apart[0]["classifier.1.weight"], apart[1]["classifier.1.weight"])

    paths = [run(s, init_seed=0) for s in (0, 1, 2)]
    ckpts = [read_checkpoint(p) for p in paths]
    assert not torch.equal(ckpts[0]["state_dict"]["classifier.1.weight"], ckpts[1]["state_dict"]["classifier.1.weight"])
    soup = average_weights(ckpts, ["a", "b", "c"])
    for k, v in soup["state_dict"].items():
        if v.is_floating_point():
            assert torch.allclose(v, torch.stack([c["state_dict"][k] for c in ckpts]).mean(0))
    assert [m["seed"] for m in soup["averaged_from"]] == [0, 1, 2]
    with pytest.raises(ValueError, match="different weights"):  # seeds 0 and 1 drew their own initial weights
        average_weights([read_checkpoint(run(0)), read_checkpoint(run(1))])
    other = save_checkpoint(tiny_model("attention_add"), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="different configs"):
        average_weights([ckpts[0], read_checkpoint(other)])

    ensemble_main([*map(str, paths), "--average-weights", "--out", str(tmp_path / "soup.pt"),
                   "--data-dir", str(mvsa_dir)])
    model, meta = load_model(tmp_path / "soup.pt")
    assert type(model) is MultimodalClassifier and meta["metrics"]["val"]["n"] > 0  # one model, scored on val
    assert len(meta["averaged_from"]) == 3 and "mean of 3 runs' weights" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="different weights"):
        ensemble_main([str(run(0)), str(run(1)), "--average-weights", "--out", str(tmp_path / "bad.pt")])
    assert not (tmp_path / "bad.pt").exists()
