import pytest
import torch

from mmsa_core import ModelConfig, MultimodalClassifier

TINY = dict(text_encoder="tiny-bert", image_encoder="tiny-cnn", hidden_dim=32, num_heads=2, max_text_len=24)


def tiny_model(fusion: str = "concat", **kw) -> MultimodalClassifier:
    """A model with small random encoders: for tests where the weights are not the point."""
    return MultimodalClassifier(ModelConfig(fusion=fusion, **{**TINY, **kw}))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
