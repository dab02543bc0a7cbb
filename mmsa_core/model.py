"""The multimodal classifier: text encoder + image encoder + a fusion head from the registry + a linear layer."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .encoders import ImageEncoder, ImageFeatures, TextEncoder, TextFeatures
from .fusion import create_fusion


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, C)
    aux_loss: torch.Tensor | None = None  # weighted auxiliary loss (mscmf's masked-token loss)
    text_attention: torch.Tensor | None = None  # (B, L) the fusion head's own attention over tokens
    image_attention: torch.Tensor | None = None  # (B, R)
    modality_logits: tuple[torch.Tensor, torch.Tensor] | None = None  # (B, C) text-label and image-label heads
    features: torch.Tensor | None = None  # (B, F) the fused representation the classifier reads
    joint_logits: torch.Tensor | None = None  # (B, C*C) the (text_label, image_label) pair, text-major


def blank(text: TextFeatures, image: ImageFeatures, keep_text: torch.Tensor, keep_image: torch.Tensor):
    """Zero a modality per sample; keep_* are (B,) floats. This is how the model sees a missing modality."""
    kt, ki = keep_text.to(text.tokens.dtype), keep_image.to(image.regions.dtype)
    text = TextFeatures(text.tokens * kt[:, None, None], text.mask, text.pooled * kt[:, None], text.input_ids)
    image = ImageFeatures(image.regions * ki[:, None, None], image.pooled * ki[:, None])
    return text, image


class MultimodalClassifier(nn.Module):
    """Encoders -> fusion head -> logits over ``cfg.labels``.

    ``forward`` runs end to end from pixels and token ids; ``forward_from_trunk`` starts from the frozen
    trunks' outputs, which is what training on cached features uses.
    """

    def __init__(self, cfg: ModelConfig, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.text_encoder = TextEncoder(cfg.text_encoder, cfg.max_text_len, cfg.text_trainable_layers,
                                        cfg.allow_download, cfg.text_lora_rank)
        self.image_encoder = ImageEncoder(cfg.image_encoder, cfg.image_trainable_blocks, pretrained,
                                          cfg.allow_download, cfg.image_mid_stage)
        if cfg.logit_bias and len(cfg.logit_bias) != len(cfg.labels):
            raise ValueError(f"logit_bias has {len(cfg.logit_bias)} values for {len(cfg.labels)} labels {list(cfg.labels)}")
        self.fusion = create_fusion(cfg.fusion, cfg, self.text_encoder.dim, self.image_encoder.dim)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(self.fusion.out_dim, len(cfg.labels)))
        if cfg.aux_modality_weight > 0:  # per-modality sentiment from each encoder's pooled features
            self.modality_heads = nn.ModuleDict({
                "text": nn.Linear(self.text_encoder.dim, len(cfg.labels)),
                "image": nn.Linear(self.image_encoder.dim, len(cfg.labels))})
        if cfg.joint_label_weight > 0:  # both modalities' labels at once, from the fused features
            self.joint_head = nn.Linear(self.fusion.out_dim, len(cfg.labels) ** 2)
        self.train()  # a fresh nn.Module trains; this also puts the frozen trunks in inference mode

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.cfg.labels)

    def head(self, text: TextFeatures, image: ImageFeatures) -> ModelOutput:
        """Fusion + classifier on encoded features."""
        out = self.fusion(text, image)
        logits = self.classifier(out.features)
        if self.cfg.logit_bias and not self.training:  # the decision bias cross-validation chose (calibrate)
            logits = logits + logits.new_tensor(self.cfg.logit_bias)
        aux = None
        if out.mlm_states is not None:
            vocab_logits = out.mlm_states @ self.text_encoder.word_embeddings.T  # (N, V), tied to the embeddings
            aux = self.cfg.mlm_weight * F.cross_entropy(vocab_logits, out.mlm_targets)
        modality = None
        if self.cfg.aux_modality_weight > 0:
            modality = (self.modality_heads["text"](text.pooled), self.modality_heads["image"](image.pooled))
        joint = self.joint_head(out.features) if self.cfg.joint_label_weight > 0 else None
        return ModelOutput(logits, aux, out.text_attention, out.image_attention, modality, out.features, joint)

    def encode_from_trunk(self, text_hidden, text_mask, input_ids, image_trunk):
        text = self.text_encoder.features(self.text_encoder.forward_top(text_hidden, text_mask), text_mask, input_ids)
        image = self.image_encoder.features(self.image_encoder.forward_top(image_trunk))
        return text, image

    def forward_from_trunk(self, text_hidden: torch.Tensor, text_mask: torch.Tensor, input_ids: torch.Tensor,
                           image_trunk: torch.Tensor, view: str = "both") -> ModelOutput:
        """Logits from cached trunk outputs. ``view`` is both | text | image (the other modality blanked)."""
        text, image = self.encode_from_trunk(text_hidden, text_mask, input_ids, image_trunk)
        return self.head(*self._view(text, image, view))

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor,
                view: str = "both") -> ModelOutput:
        """(B, 3, H, W) pixels and (B, L) token ids -> logits."""
        hidden = self.text_encoder.forward_trunk(input_ids, mask)
        return self.forward_from_trunk(hidden, mask, input_ids, self.image_encoder.forward_trunk(pixels), view)

    def _view(self, text, image, view: str):
        b = text.tokens.shape[0]
        one, zero = torch.ones(b, device=text.tokens.device), torch.zeros(b, device=text.tokens.device)
        if view == "text":
            return blank(text, image, one, zero)
        if view == "image":
            return blank(text, image, zero, one)
        if view != "both":
            raise ValueError(f"Unknown view {view!r}; choose from ['both', 'text', 'image']")
        p = self.cfg.modality_dropout
        if self.training and p > 0:  # blank one modality for a share p of the samples
            r = torch.rand(b, device=one.device)
            drop_text, drop_image = r < p / 2, (r >= p / 2) & (r < p)
            return blank(text, image, (~drop_text).float(), (~drop_image).float())
        return text, image

    # -- what a checkpoint stores -------------------------------------------------------------------
    def stores(self, key: str) -> bool:
        """Whether a checkpoint stores this state-dict key: everything but the pretrained encoder weights."""
        for prefix, encoder in (("text_encoder.", self.text_encoder), ("image_encoder.", self.image_encoder)):
            if key.startswith(prefix):
                return encoder.stores(key[len(prefix):])
        return True

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state that differs from the pretrained encoders: head, classifier and fine-tuned layers
        (or their LoRA adapters)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if self.stores(k)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise RuntimeError(f"Checkpoint does not fit the model: missing {sorted(missing)[:5]}, "
                               f"unexpected {sorted(unexpected)[:5]}")
        self.load_state_dict(state, strict=False)

    def param_groups(self, head_lr: float, encoder_lr: float, layer_decay: float = 1.0) -> list[dict]:
        """AdamW groups: fine-tuned encoder layers learn slower than the fresh head, and with layer-wise
        decay each layer below an encoder's top learns ``layer_decay`` times slower than the one above it
        (lower layers hold general features that a small data set should move least)."""
        depth: dict[int, list] = {}  # distance from the encoder's top -> parameters
        stacks = [(self.text_encoder.layers, self.text_encoder.split),
                  (self.image_encoder.stages, self.image_encoder.trainable_from)]
        for modules, split in stacks:
            for i, module in enumerate(modules[split:]):
                d = len(modules) - split - 1 - i
                depth.setdefault(d, []).extend(p for p in module.parameters() if p.requires_grad)
        in_encoders = {id(p) for ps in depth.values() for p in ps}
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in in_encoders]
        groups = [{"params": head, "lr": head_lr}]
        groups += [{"params": ps, "lr": encoder_lr * layer_decay ** d} for d, ps in sorted(depth.items())]
        return [g for g in groups if g["params"]]


@contextmanager
def encoders_frozen(model: MultimodalClassifier):
    """Within this context the whole text encoder (fine-tuned layers included) is a frozen, cacheable trunk
    and the image encoder's top stages run frozen too: only the fusion head and the classifier train.
    This is how retraining warm-starts a model cheaply. The text trunk's cache key gets a fingerprint of
    the fine-tuned layers (``trunk_fingerprint``). On exit the split and the trainable flags come back, so
    a checkpoint saved afterwards still stores the fine-tuned layers."""
    from .features import weights_fingerprint

    t, i = model.text_encoder, model.image_encoder
    split, flags = t.split, {p: p.requires_grad for p in model.parameters()}
    t.trunk_fingerprint = weights_fingerprint(t.layers[split:]) if split < len(t.layers) else ""
    t.split, i.frozen_top = len(t.layers), True
    for p in [*t.parameters(), *i.parameters()]:
        p.requires_grad_(False)
    model.train(model.training)  # re-apply the modes: frozen parts in inference mode
    try:
        yield model
    finally:
        t.split, t.trunk_fingerprint, i.frozen_top = split, "", False
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.train(model.training)


def pretrained_reference(model: MultimodalClassifier) -> dict[str, torch.Tensor]:
    """The state entries whose values come from pretrained weights (the encoders', LoRA adapters aside):
    what int8-delta storage measures fine-tuned weights against (``compress``)."""
    out = {}
    for prefix, encoder in (("text_encoder.", model.text_encoder), ("image_encoder.", model.image_encoder)):
        if encoder.pretrained:
            out.update({prefix + k: v for k, v in encoder.state_dict().items() if "lora_" not in k})
    return out


def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every text encoder's LoRA adapters into its weights (for inference; training stays unmerged)."""
    for module in model.modules():
        if isinstance(module, TextEncoder) and module.lora_rank:
            module.merge_lora()
    return model


def create_model(name: str, pretrained: bool = True, **overrides) -> MultimodalClassifier:
    """Build a model by fusion name: ``create_model("mscmf", hidden_dim=128)``."""
    return MultimodalClassifier(ModelConfig(fusion=name, **overrides), pretrained=pretrained)
