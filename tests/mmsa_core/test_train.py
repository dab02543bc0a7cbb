import torch

from mmsa_core import ModelConfig, TrainConfig, load_model
from mmsa_core.train import main as train_main
from mmsa_core.train import train

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


def test_train_cli_rejects_unknown_model_with_the_menu(capsys):
    import pytest

    with pytest.raises(SystemExit, match=r"Unknown model 'resnet_magic'; choose from \[.*'mscmf'"):
        train_main(["--model", "resnet_magic"])
