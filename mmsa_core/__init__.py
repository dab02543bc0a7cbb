"""mmsa_core: image-text sentiment models for MVSA, their training, evaluation and inference.

    from mmsa_core import Predictor
    Predictor.from_checkpoint().predict(image, "what a day!")  # the shipped default model
"""
from .checkpoint import DEFAULT_CHECKPOINT, load_model, save_checkpoint
from .config import LABELS, ModelConfig, TrainConfig
from .fusion import list_fusions
from .model import MultimodalClassifier, create_model
from .predictor import Prediction, Predictor

list_models = list_fusions

__all__ = ["DEFAULT_CHECKPOINT", "LABELS", "ModelConfig", "MultimodalClassifier", "Prediction", "Predictor",
           "TrainConfig", "create_model", "list_models", "load_model", "save_checkpoint"]
