import numpy as np
import pytest
import torch
from PIL import Image

from mmsa_core.encoders import ImageEncoder, TextEncoder


@pytest.fixture(scope="module")
def lite0():
    return ImageEncoder("efficientnet_lite0").eval()


@pytest.mark.parametrize("post_id, imagenet_class", [("277", 985), ("144", 817)])  # daisy, sports car
def test_lite0_weights_are_real_imagenet_weights(lite0, mvsa_dir, post_id, imagenet_class):
    x = lite0.preprocess(Image.open(mvsa_dir / "images" / f"{post_id}.jpg").convert("RGB"))[None]
    with torch.no_grad():
        probs = lite0.classify_imagenet(x).softmax(-1)[0]
    assert int(probs.argmax()) == imagenet_class
    assert float(probs.max()) > 0.5


def test_lite0_batchnorm_statistics_are_trained(lite0):
    bns = [m for m in lite0.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) > 20
    assert not any(torch.allclose(m.running_var, torch.ones_like(m.running_var)) for m in bns)
    assert not any(torch.allclose(m.running_mean, torch.zeros_like(m.running_mean)) for m in bns)


def test_lite0_map_shape_and_target_layer(lite0):
    with torch.no_grad():
        fmap = lite0.forward_top(lite0.forward_trunk(torch.zeros(2, 3, 224, 224)))
    assert fmap.shape == (2, 1280, 7, 7)
    assert lite0.target_layer is lite0.stages[-1]


def test_minilm_is_real_and_offline():
    enc = TextEncoder("minilm").eval()
    texts = ["I love this beautiful sunny day", "What a wonderful sunny morning", "The invoice is attached"]
    tok = enc.tokenize(texts)
    with torch.no_grad():
        f = enc(tok["input_ids"], tok["attention_mask"])
    v = torch.nn.functional.normalize(f.pooled, dim=-1)
    assert f.tokens.shape == (3, 64, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2  # pretrained semantics, not random weights


def assert_split_equals_whole(enc: TextEncoder, texts: list[str]) -> None:
    """The encoder's trunk then top gives the loaded model's own output on every real token."""
    tok = enc.tokenize(texts)
    with torch.no_grad():
        ours = enc(tok["input_ids"], tok["attention_mask"]).tokens
        ref = enc.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"].long()).last_hidden_state
    m = tok["attention_mask"]
    assert torch.allclose(ours[m], ref[m], atol=1e-5)


def test_text_trunk_plus_top_equals_the_full_encoder():
    enc = TextEncoder("minilm", max_len=16, trainable_layers=2).eval()
    assert_split_equals_whole(enc, ["good morning #sun", "a"])
    trainable = {n.split(".")[3] for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5"}


def test_mpnet_trunk_plus_top_equals_the_full_encoder(tmp_path):
    """MPNet layers need the encoder's relative-position bias: without it the split encoder would drift from
    the model it was loaded from (all-mpnet-base-v2 is the stronger sentence encoder people try next)."""
    from transformers import AutoTokenizer, MPNetConfig, MPNetModel

    from mmsa_core.encoders.text import _minilm_path

    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=30527, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=80)
    MPNetModel(cfg, add_pooling_layer=False).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(_minilm_path(), local_files_only=True).save_pretrained(tmp_path)
    enc = TextEncoder(str(tmp_path), max_len=16, trainable_layers=1).eval()
    assert_split_equals_whole(enc, ["good morning #sun, a long day ahead", "a"])


def test_frozen_trunk_keeps_eval_mode_when_training():
    enc = ImageEncoder("tiny-cnn", trainable_blocks=1).train()
    assert not enc.stages[0].training and enc.stages[-1].training


def test_unknown_encoder_lists_the_menu():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        ImageEncoder("vgg16")


def test_resnet50_offline_without_weights_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="allow_download=True"):
        ImageEncoder("resnet50")
    enc = ImageEncoder("resnet50", pretrained=False)  # the architecture itself is one switch away
    assert enc.dim == 2048 and enc.target_layer is enc.stages[-1]


def test_unknown_text_encoder_offline_says_how_to_fix():
    with pytest.raises(RuntimeError, match="allow_download=True"):
        TextEncoder("no-such-org/no-such-model")


def test_cached_image_features_do_not_depend_on_the_batch(mvsa_dir):
    from mmsa_core import ModelConfig, MultimodalClassifier
    from mmsa_core.features import encode_images

    model = MultimodalClassifier(ModelConfig(fusion="concat"))  # a fresh model is in training mode
    paths = [str(mvsa_dir / "images" / f"{i}.jpg") for i in ("277", "144", "237")]
    together = encode_images(model, paths)
    alone = encode_images(model, paths[:1])
    assert torch.allclose(together[:1], alone, atol=1e-4)
    assert not model.image_encoder.stages[0].training  # frozen BatchNorm keeps its running statistics


def test_a_mid_stage_joins_the_top_map_and_the_trunk_ends_under_it():
    enc, plain = ImageEncoder("tiny-cnn", mid_stage=1), ImageEncoder("tiny-cnn")  # same seeded weights
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        trunk = enc.forward_trunk(x)
        assert trunk.shape == (2, 16, 16, 16)  # the cache holds the mid stage's output
        top = enc.forward_top(trunk)
        assert top.shape == (2, 48, 8, 8) and enc.dim == 48 and enc.features(top).pooled.shape == (2, 48)
        torch.testing.assert_close(top[:, :32], plain.forward_top(plain.forward_trunk(x)))  # the top's own map
        torch.testing.assert_close(top[:, 32:], torch.nn.functional.avg_pool2d(trunk, 2))  # the mid map on its grid
    assert not any(p.requires_grad for p in enc.parameters())  # the stage above the cut still runs frozen
    assert all(not stage.training for stage in enc.train().stages)
    with pytest.raises(ValueError, match="mid_stage"):
        ImageEncoder("tiny-cnn", mid_stage=2)
