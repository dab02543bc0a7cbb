"""Fusion heads. Importing this package registers every head; add a fusion by adding one file here."""
from . import bigru_tensor, cross_attention, mscmf, simple, transformer  # noqa: F401  (registration)
from .registry import FUSIONS, AttentionPool, FusionOutput, create_fusion, list_fusions, register_fusion

__all__ = ["FUSIONS", "AttentionPool", "FusionOutput", "create_fusion", "list_fusions", "register_fusion"]
