"""Every registered model builds, runs, trains and round-trips through a checkpoint."""
import pytest
import torch

from mmsa_core import ModelConfig, list_models, load_model, save_checkpoint
from mmsa_core.fusion import create_fusion
from mmsa_core.model import MultimodalClassifier

from .conftest import tiny_model

SEED_MODELS = {"text_only", "image_only", "concat", "add", "attention", "attention_concat", "attention_add",
               "transformer", "bigru_tensor", "cross_attention", "mscmf"}


def batch(model, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    texts = ["so happy today #sun", "worst day ever", "a photo of a table", "love it!!",
             "I hate waiting", "new post", "great game tonight", "meh"][:n]
    tok = model.text_encoder.tokenize(texts)
    pixels = torch.rand(len(texts), 3, 64, 64, generator=g)
    return pixels, tok["input_ids"], tok["attention_mask"]


def test_registry_has_every_seed_model():
    assert SEED_MODELS <= set(list_models())


def test_unknown_model_lists_the_menu():
    with pytest.raises(ValueError, match=r"Unknown fusion 'nope'; choose from \[.*mscmf"):
        create_fusion("nope", None, 8, 8)


@pytest.mark.parametrize("name", sorted(SEED_MODELS))
def test_model_trains_and_loss_drops(name):
    # the top CNN stage trains too: a random tiny CNN frozen whole gives near-constant image features
    model = tiny_model(name, mlm_weight=0.5 if name == "mscmf" else 0.0, dropout=0.0, image_trainable_blocks=1)
    pixels, ids, mask = batch(model)
    y = torch.tensor([2, 0, 1, 2, 0, 1, 2, 1])
    opt = torch.optim.AdamW(model.param_groups(3e-3, 1e-4))
    ce_losses, totals = [], []
    for _ in range(25):
        out = model(pixels, ids, mask)
        assert out.logits.shape == (8, 3) and torch.isfinite(out.logits).all()
        ce = torch.nn.functional.cross_entropy(out.logits, y)
        loss = ce + (out.aux_loss if out.aux_loss is not None else 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ce_losses.append(ce.item())
        totals.append(loss.item())
    assert ce_losses[-1] < 0.7 * ce_losses[0], ce_losses
    assert totals[-1] < totals[0], totals  # the auxiliary loss, where there is one, falls too


def test_attention_models_expose_word_weights():
    for name in ("attention_concat", "cross_attention", "bigru_tensor", "mscmf", "text_only"):
        model = tiny_model(name).eval()
        pixels, ids, mask = batch(model, 2)
        w = model(pixels, ids, mask).text_attention
        assert w.shape == ids.shape, name
        assert torch.allclose(w.sum(-1), torch.ones(2), atol=1e-4), name
        assert (w[~mask] < 1e-6).all(), name  # no weight on padding


def test_mscmf_masks_a_quarter_of_the_tokens_most_like_the_image():
    model = tiny_model("mscmf", mlm_weight=1.0).train()
    pixels, ids, mask = batch(model, 4)
    out = model(pixels, ids, mask)
    inner = mask.sum(1) - 2  # without [CLS] and [SEP]
    assert out.aux_loss is not None and out.aux_loss > 0
    expected = int(sum(torch.ceil(0.25 * inner.float())))
    fusion_out = model.fusion(*model.encode_from_trunk(model.text_encoder.forward_trunk(ids, mask), mask, ids,
                                                       model.image_encoder.forward_trunk(pixels)))
    assert fusion_out.mlm_targets.numel() == expected
    model.eval()
    assert model(pixels, ids, mask).aux_loss is None  # no masking at inference


def test_views_blank_the_other_modality():
    model = tiny_model("concat").eval()
    pixels, ids, mask = batch(model, 2)
    text_view = model(pixels, ids, mask, view="text").logits
    assert torch.allclose(text_view, model(torch.rand_like(pixels), ids, mask, view="text").logits)
    assert not torch.allclose(text_view, model(pixels, ids, mask).logits)
    with pytest.raises(ValueError, match="choose from"):
        model(pixels, ids, mask, view="audio")


@pytest.mark.parametrize("name", ["mscmf", "bigru_tensor"])
def test_checkpoint_round_trip_gives_identical_logits(tmp_path, name):
    model = tiny_model(name, text_trainable_layers=1, image_trainable_blocks=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # as if trained: weights differ from a fresh build
    pixels, ids, mask = batch(model)
    path = save_checkpoint(model, tmp_path / "m.pt", metrics={"val": {"accuracy": 50.0}}, data_hash="abc")
    loaded, meta = load_model(path)
    with torch.no_grad():
        assert torch.equal(model(pixels, ids, mask).logits, loaded(pixels, ids, mask).logits)
    assert meta["config"]["fusion"] == name and meta["labels"] == ["negative", "neutral", "positive"]
    assert meta["encoders"] == {"text": "tiny-bert", "image": "tiny-cnn"} and meta["data_hash"] == "abc"


def test_checkpoint_of_pretrained_encoders_stores_only_what_changed():
    model = MultimodalClassifier(ModelConfig(fusion="concat", text_trainable_layers=1))
    keys = model.trainable_state_dict().keys()
    assert any(k.startswith("text_encoder.model.encoder.layer.5.") for k in keys)
    assert not any(k.startswith(("text_encoder.model.encoder.layer.4.", "text_encoder.model.embeddings",
                                 "image_encoder.stages.")) for k in keys)


def test_lora_checkpoints_store_only_the_adapters_and_round_trip(tmp_path):
    model = MultimodalClassifier(ModelConfig(fusion="attention_concat", text_trainable_layers=-1, text_lora_rank=4))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("text_encoder.")}
    assert trainable and all("lora_" in n for n in trainable)  # the pretrained text weights stay frozen
    text_keys = [k for k in model.trainable_state_dict() if k.startswith("text_encoder.")]
    assert text_keys and all("lora_" in k for k in text_keys)
    with torch.no_grad():  # adapters start as a no-op (B = 0): make them matter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.eval()
    pixels, ids, mask = batch(model)
    loaded, _ = load_model(save_checkpoint(model, tmp_path / "lora.pt"))
    with torch.no_grad():
        expected = model(pixels, ids, mask).logits
        assert torch.allclose(loaded(pixels, ids, mask).logits, expected, atol=1e-5)
        loaded.text_encoder.merge_lora()  # folded into the weights for inference: the same outputs
        assert torch.allclose(loaded(pixels, ids, mask).logits, expected, atol=1e-4)
    assert (tmp_path / "lora.pt").stat().st_size < 8e6  # adapters and head, not MiniLM's 90 MB


def test_corrupt_checkpoint_gets_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="Cannot load checkpoint"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_model(tmp_path / "missing.pt")


def test_state_dict_has_no_duplicate_entries():
    model = tiny_model("concat", text_trainable_layers=1)
    ptrs = [v.data_ptr() for v in model.state_dict().values() if v.numel()]
    assert len(ptrs) == len(set(ptrs))
