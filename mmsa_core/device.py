"""Where models run: resolved once at the edge (``Predictor.__init__``, a CLI's ``main``), read from the model
elsewhere (``next(model.parameters()).device``). Shared by inference and training, so neither imports the other."""
from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when available, else the CPU; any other name is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
