import torch

from mmsa_core import ModelConfig, TrainConfig, load_model
from mmsa_core.train import main as train_main
from mmsa_core.train import supervised_contrastive, symmetric_kl, train

from .conftest import TINY


def test_end_to_end_training_with_augmentation_and_cnn_fine_tuning(tmp_path, mvsa_dir):
    cfg = ModelConfig(fusion="attention_add", image_trainable_blocks=1, text_trainable_layers=1, **TINY)
    before = torch.nn.utils.parameters_to_vector(
        [p for p in __import__("mmsa_core").MultimodalClassifier(cfg).image_encoder.stages[-1].parameters()])
    model, rec = train(cfg, TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=24, batch_size=8, augment=True,
                                        cache_dir=str(tmp_path)), tmp_path / "aug.pt", progress=False)
    after = torch.nn.utils.parameters_to_vector(list(model.image_encoder.stages[-1].parameters()))
    assert not torch.allclose(before, after)  # the top CNN block was fine-tuned
    assert rec["n_train"] == 24 and rec["train_config"]["augment"] is True
    loaded, meta = load_model(tmp_path / "aug.pt")
    assert meta["config"]["image_trainable_blocks"] == 1


def test_training_is_reproducible_with_a_fixed_seed(tmp_path, mvsa_dir):
    tc = TrainConfig(data_dir=str(mvsa_dir), epochs=2, limit=32, cache_dir=str(tmp_path), seed=3)
    _, a = train(ModelConfig(fusion="transformer", **TINY), tc, progress=False)
    _, b = train(ModelConfig(fusion="transformer", **TINY), tc, progress=False)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_supervised_contrastive_loss_rewards_features_grouped_by_label():
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    noise = 0.05 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    grouped = torch.nn.functional.one_hot(y, 3).float() + noise
    mixed = grouped[torch.tensor([0, 2, 4, 1, 3, 5])]  # each label's two posts now sit in different places
    loss = supervised_contrastive(0.1)
    assert loss(grouped, y) < loss(mixed, y)


def test_the_contrastive_loss_enters_training(tmp_path, mvsa_dir):
    tc = dict(data_dir=str(mvsa_dir), epochs=1, limit=32, cache_dir=str(tmp_path), seed=3)
    _, plain = train(ModelConfig(fusion="attention_concat", **TINY), TrainConfig(**tc), progress=False)
    _, supcon = train(ModelConfig(fusion="attention_concat", **TINY), TrainConfig(**tc, supcon_weight=0.5),
                      progress=False)
    assert supcon["history"][0]["train_loss"] > plain["history"][0]["train_loss"]  # the added term is positive
    assert supcon["train_config"]["supcon_weight"] == 0.5


def test_symmetric_kl_is_zero_for_agreeing_passes_and_symmetric_otherwise():
    a, b = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.5]])
    assert symmetric_kl(a, a) == 0
    assert symmetric_kl(a, b) > 0 and torch.isclose(symmetric_kl(a, b), symmetric_kl(b, a))


def test_r_drop_enters_training(tmp_path, mvsa_dir):
    tc = dict(data_dir=str(mvsa_dir), epochs=1, limit=32, cache_dir=str(tmp_path), seed=3, early_stopping=False)
    cfg = ModelConfig(fusion="attention_concat", dropout=0.5, **TINY)
    _, plain = train(cfg, TrainConfig(**tc), progress=False)
    _, rdrop = train(cfg, TrainConfig(**tc, rdrop_weight=5.0), progress=False)
    assert rdrop["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert rdrop["train_config"]["rdrop_weight"] == 5.0


def test_weight_averaging_ends_on_the_moving_average(tmp_path, mvsa_dir):
    tc = dict(data_dir=str(mvsa_dir), epochs=2, limit=32, cache_dir=str(tmp_path), seed=3, early_stopping=False,
              batch_size=8)
    cfg = ModelConfig(fusion="attention_concat", **TINY)

    def final_weights(**kw) -> torch.Tensor:
        model, _ = train(cfg, TrainConfig(**{**tc, **kw}), progress=False)
        return torch.cat([v.flatten().float() for v in model.trainable_state_dict().values()])

    last = final_weights()
    assert torch.allclose(final_weights(ema_decay=1e-9), last)  # an average of the last step alone: the last weights
    averaged = final_weights(ema_decay=0.9)
    assert not torch.allclose(averaged, last, atol=1e-4)  # a longer average ends elsewhere
    # Early stopping keeps the averaged weights of its best epoch (one epoch here), not the raw ones.
    kept = final_weights(epochs=1, early_stopping=True, ema_decay=0.9)
    assert torch.equal(kept, final_weights(epochs=1, ema_decay=0.9))
    assert not torch.allclose(kept, final_weights(epochs=1), atol=1e-4)


def test_train_cli_rejects_unknown_model_with_the_menu(capsys):
    import pytest

    with pytest.raises(SystemExit, match=r"Unknown model 'resnet_magic'; choose from \[.*'mscmf'"):
        train_main(["--model", "resnet_magic"])


def test_distillation_pulls_the_student_towards_its_teacher(tmp_path, mvsa_dir):
    from dataclasses import replace

    from mmsa_core.checkpoint import file_sha256
    from mmsa_core.train import teacher_probs, training_posts

    def kl(p, q):  # mean KL(p || q) over posts
        return float((p * (p.clamp_min(1e-8).log() - q.clamp_min(1e-8).log())).sum(1).mean())

    cfg = ModelConfig(fusion="attention_concat", **TINY)
    tc = TrainConfig(data_dir=str(mvsa_dir), epochs=3, limit=32, cache_dir=str(tmp_path), early_stopping=False)
    train(cfg, replace(tc, seed=7, lr=1e-2), tmp_path / "teacher.pt", progress=False)
    train(cfg, tc, tmp_path / "plain.pt", progress=False)
    _, rec = train(cfg, replace(tc, teacher=str(tmp_path / "teacher.pt"), distill_weight=5.0),
                   tmp_path / "student.pt", progress=False)
    assert rec["train_config"]["teacher"].endswith("teacher.pt")  # the record says what it learned from
    assert rec["teacher_sha256"] == file_sha256(tmp_path / "teacher.pt")
    posts, _ = training_posts(tc)
    labels = load_model(tmp_path / "teacher.pt")[0].labels
    p = {k: teacher_probs(str(tmp_path / f"{k}.pt"), posts, labels, tc, progress=False)
         for k in ("teacher", "plain", "student")}
    assert kl(p["teacher"], p["student"]) < kl(p["teacher"], p["plain"])


def test_a_teacher_with_other_labels_is_refused(tmp_path, mvsa_dir):
    import pytest

    from mmsa_core.train import teacher_probs, training_posts

    tc = TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=8, cache_dir=str(tmp_path), early_stopping=False)
    train(ModelConfig(fusion="concat", **TINY), tc, tmp_path / "t.pt", progress=False)
    with pytest.raises(ValueError, match="predicts"):
        teacher_probs(str(tmp_path / "t.pt"), training_posts(tc)[0], ("bad", "good"), tc, progress=False)


def test_text_only_augmentation_re_encodes_edited_texts_and_keeps_the_cached_images(tmp_path, mvsa_dir, monkeypatch):
    import mmsa_core.train as train_mod
    from mmsa_core.augment import augment_text

    tc = dict(data_dir=str(mvsa_dir), epochs=1, limit=32, cache_dir=str(tmp_path), seed=3, early_stopping=False)
    cfg = ModelConfig(fusion="attention_concat", text_trainable_layers=1, **TINY)
    _, plain = train(cfg, TrainConfig(**tc), progress=False)  # fills the feature cache

    def no_decoding(*a, **k):
        raise AssertionError("text-only augmentation decoded an image")

    monkeypatch.setattr(train_mod, "load_image", no_decoding)
    text_only = TrainConfig(**tc, augment=True, augment_images=False)
    monkeypatch.setattr(train_mod, "augment_text", lambda text, rng: text)
    _, same = train(cfg, text_only, progress=False)  # unedited texts, re-encoded: the cached batches again
    assert abs(same["history"][0]["train_loss"] - plain["history"][0]["train_loss"]) < 1e-3
    seen = []

    def recorded(text, rng):  # the real edits, recorded
        seen.append((text, augment_text(text, rng)))
        return seen[-1][1]

    monkeypatch.setattr(train_mod, "augment_text", recorded)
    _, edited = train(cfg, text_only, progress=False)
    assert len(seen) == 32 and sum(a != b for a, b in seen) >= 16  # every post once per epoch, most edited
    assert edited["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert edited["train_config"]["augment_images"] is False


def test_a_setting_on_by_default_is_turned_off_by_a_no_flag():
    from mmsa_core.train import configs_from_args, parse_args

    _, both = configs_from_args(parse_args(["--augment"]))
    _, text_only = configs_from_args(parse_args(["--augment", "--no-augment-images"]))
    assert (both.augment, both.augment_images) == (True, True)
    assert (text_only.augment, text_only.augment_images) == (True, False)


def test_the_paired_contrast_rewards_a_post_that_stays_close_to_its_edited_copy():
    from mmsa_core.train import paired_contrastive

    posts = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    copies = posts + 0.05 * torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    loss = paired_contrastive(0.1)
    assert loss(posts, copies) < loss(posts, copies.roll(1, dims=0))  # each copy beside another post


def test_the_paired_contrast_enters_training_and_needs_texts_only_augmentation(tmp_path, mvsa_dir):
    import pytest

    tc = dict(data_dir=str(mvsa_dir), epochs=1, limit=32, cache_dir=str(tmp_path), seed=3, early_stopping=False)
    cfg = ModelConfig(fusion="attention_concat", **TINY)
    _, plain = train(cfg, TrainConfig(**tc, augment=True, augment_images=False), progress=False)
    _, contrast = train(cfg, TrainConfig(**tc, augment=True, augment_images=False, aug_contrast_weight=0.5),
                        progress=False)
    assert contrast["history"][0]["train_loss"] > plain["history"][0]["train_loss"]  # the added term is positive
    for bad in (dict(), dict(augment=True)):  # no edited copy, or one that needs the images decoded
        with pytest.raises(ValueError, match="augment_images=False"):
            train(cfg, TrainConfig(**tc, aug_contrast_weight=0.5, **bad), progress=False)


def test_joint_targets_number_the_label_pair_text_major_and_skip_unknown_pairs():
    from mmsa_core.train import IGNORE, joint_targets

    y_text, y_image = torch.tensor([2, 0, 1, IGNORE]), torch.tensor([1, 0, IGNORE, 2])
    assert joint_targets(y_text, y_image, 3).tolist() == [7, 0, IGNORE, IGNORE]


def test_the_joint_label_head_enters_training_and_survives_a_checkpoint(tmp_path, mvsa_dir):
    tc = dict(data_dir=str(mvsa_dir), epochs=1, limit=32, cache_dir=str(tmp_path), seed=3, early_stopping=False)
    _, plain = train(ModelConfig(fusion="attention_concat", **TINY), TrainConfig(**tc), progress=False)
    model, joint = train(ModelConfig(fusion="attention_concat", joint_label_weight=0.5, **TINY), TrainConfig(**tc),
                         tmp_path / "joint.pt", progress=False)
    assert joint["history"][0]["train_loss"] > plain["history"][0]["train_loss"]  # the added term is positive
    loaded, meta = load_model(tmp_path / "joint.pt")
    assert meta["config"]["joint_label_weight"] == 0.5
    assert torch.equal(loaded.joint_head.weight, model.joint_head.weight)
    out = loaded.forward(torch.rand(2, 3, 32, 32), torch.randint(5, 50, (2, 7)), torch.ones(2, 7, dtype=torch.bool))
    assert out.joint_logits.shape == (2, 9) and out.logits.shape == (2, 3)


def test_a_mid_stage_model_trains_from_the_cache_and_predicts_alike_from_pixels(tmp_path, mvsa_dir):
    import numpy as np

    from mmsa_core.data import load_mvsa
    from mmsa_core.features import encode_posts, predict_probs
    from mmsa_core.predictor import Predictor

    cfg = ModelConfig(fusion="attention_concat", image_mid_stage=1, **TINY)
    tc = TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=16, cache_dir=str(tmp_path), early_stopping=False)
    train(cfg, tc, tmp_path / "mid.pt", progress=False)
    loaded, meta = load_model(tmp_path / "mid.pt")
    assert meta["config"]["image_mid_stage"] == 1 and loaded.image_encoder.dim == 48
    posts = load_mvsa(mvsa_dir)[:4]
    cached = predict_probs(loaded, encode_posts(loaded, posts, cache_dir="", progress=False))
    direct = Predictor(loaded).probabilities([p.image for p in posts], [p.text for p in posts]).numpy()
    np.testing.assert_allclose(cached, direct, atol=1e-5)  # the cut under the mid stage loses nothing


def test_the_final_refit_trains_on_val_too_and_needs_a_fixed_schedule(tmp_path, mvsa_dir):
    import pytest

    from mmsa_core.checkpoint import read_checkpoint, trained_on_val
    from mmsa_core.data import load_mvsa
    from mmsa_core.train import training_posts

    with pytest.raises(ValueError, match="early_stopping=False"):
        TrainConfig(data_dir=str(mvsa_dir), train_on_val=True)
    posts = load_mvsa(mvsa_dir)
    train_ids = {p.id for p in posts if p.split == "train"}
    val_ids = {p.id for p in posts if p.split == "val"}
    plain, val = training_posts(TrainConfig(data_dir=str(mvsa_dir)))
    refit, none = training_posts(TrainConfig(data_dir=str(mvsa_dir), train_on_val=True, early_stopping=False))
    assert {p.id for p in plain} == train_ids and {p.id for p in val} == val_ids
    assert {p.id for p in refit} == train_ids | val_ids and none == []  # no test post, nothing left to judge

    tc = TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=24, batch_size=8, cache_dir=str(tmp_path),
                     train_on_val=True, early_stopping=False)
    _, rec = train(ModelConfig(fusion="concat", **TINY), tc, tmp_path / "refit.pt", progress=False)
    assert rec["n_train"] == 24 + 8 and rec["metrics"] == {}  # 24 train + the 8 val posts a 24-post limit keeps
    assert trained_on_val(read_checkpoint(tmp_path / "refit.pt"))
    _, rec = train(ModelConfig(fusion="concat", **TINY), TrainConfig(data_dir=str(mvsa_dir), epochs=1, limit=24,
                   batch_size=8, cache_dir=str(tmp_path)), tmp_path / "plain.pt", progress=False)
    assert not trained_on_val(read_checkpoint(tmp_path / "plain.pt"))
