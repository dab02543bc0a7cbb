"""Pretrained text and image encoders that load offline."""
from .image import IMAGE_ENCODERS, ImageEncoder, ImageFeatures
from .text import TEXT_ALIASES, TextEncoder, TextFeatures

__all__ = ["IMAGE_ENCODERS", "ImageEncoder", "ImageFeatures", "TEXT_ALIASES", "TextEncoder", "TextFeatures"]
