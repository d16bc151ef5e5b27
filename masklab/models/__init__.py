"""A small registry: model name → plain builder function + weight source + metadata."""

from masklab.models.registry import ModelInfo, get_info, list_models, register

__all__ = ["ModelInfo", "get_info", "list_models", "register"]
