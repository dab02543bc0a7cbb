"""Self-describing checkpoints: config, labels, encoder names, metrics and data hash travel with the weights."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import torch

from .config import ModelConfig
from .model import MultimodalClassifier

log = logging.getLogger(__name__)
FORMAT = 1
DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "default.pt"


def save_checkpoint(model: MultimodalClassifier, path: str | Path, **meta) -> Path:
    """Write ``{"format", "config", "labels", "encoders", "state_dict", **meta}`` atomically."""
    ckpt = {
        "format": FORMAT,
        "config": model.cfg.to_dict(),
        "labels": list(model.labels),
        "encoders": {"text": model.cfg.text_encoder, "image": model.cfg.image_encoder},
        "state_dict": {k: v.cpu() for k, v in model.trainable_state_dict().items()},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **meta,
    }
    return write_checkpoint(ckpt, path)


def write_checkpoint(ckpt: dict, path: str | Path) -> Path:
    """Write a checkpoint dict atomically (a temporary file renamed into place): a reader never sees half
    a file, and a failed write leaves the previous checkpoint as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, with a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"Cannot load checkpoint {path}: not a mmsa_core checkpoint or corrupt") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise RuntimeError(f"Cannot load checkpoint {path}: expected format {FORMAT}")
    return ckpt


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu",
               **config_overrides) -> tuple[MultimodalClassifier, dict]:
    # An ensemble checkpoint returns an EnsembleClassifier, which offers the same seam.
    """Rebuild a model from a checkpoint alone (the shipped default when ``path`` is None).

    Returns the model in eval mode and the checkpoint's metadata (everything but the weights).
    """
    path = Path(path) if path else DEFAULT_CHECKPOINT
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") == "ensemble":
        from .ensemble import EnsembleClassifier, build_member

        model = EnsembleClassifier([build_member(m) for m in ckpt["members"]])
        meta = {k: v for k, v in ckpt.items() if k != "members"}
        meta["members"] = [{k: v for k, v in m.items() if k != "state_dict"} for m in ckpt["members"]]
    else:
        from .ensemble import build_member  # also reads weights stored as int8 deltas (``compress``)

        model = build_member({**ckpt, "config": {**ckpt["config"], **config_overrides}})
        meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    meta["path"] = str(path)
    meta["sha256"] = file_sha256(path)
    return model.to(device).eval(), meta


def trained_on_val(ckpt: dict) -> bool:
    """Whether MVSA val trained this checkpoint (any member of an ensemble): the final refit on train+val.
    Its val figures are then in-sample; its estimate is the recipe's cross-validation (``metrics["cv"]``)."""
    records = ckpt.get("members") if ckpt.get("kind") == "ensemble" else [ckpt]
    return any(r.get("train_config", {}).get("train_on_val", False) for r in records or [])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
