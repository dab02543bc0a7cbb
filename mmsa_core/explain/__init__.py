"""Explanations for the fused model: why did it label this post as it did, and can we trust the answer?

    from mmsa_core.predictor import Predictor
    e = Predictor.from_checkpoint().explain("post.jpg", "what a day!", method="GradCAM")
    e.overlay, e.word_scores, e.modality.shares, e.faithfulness

Image heatmaps come from pytorch-grad-cam through the fused model, word scores from integrated gradients
(Captum) and from the fusion head's own attention, and every explanation carries faithfulness scores.
"""
from .cam import CAM_METHODS, list_cam_methods
from .explainer import explain
from .modality import ModalityViews
from .overlay import overlay
from .result import Explanation
from .words import scale_scores

__all__ = ["CAM_METHODS", "Explanation", "ModalityViews", "explain", "list_cam_methods", "overlay", "scale_scores"]
