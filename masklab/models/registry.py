"""The model registry: each entry is data plus a plain builder function (timm/SAM style)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInfo:
    """What a model is, how to build it and where its weights come from."""

    name: str
    task: str  # "semantic", "instances", ...
    builder: Callable  # builder(num_classes, **config) -> torch.nn.Module
    weights: str | None = None  # a masklab.weights source name (None: no pretrained weights)
    dataset: str = "-"
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    input_size: tuple[int, int] | None = None  # (height, width) it was trained at
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    license: str = "-"
    description: str = ""
    config: dict = field(default_factory=dict)

    def parameters(self) -> int:
        """Parameter count, measured by building the model on the meta device (no memory)."""
        import torch

        with torch.device("meta"):
            model = self.builder(self.num_classes or 21, **self.config)
        return sum(p.numel() for p in model.parameters())


_MODELS: dict[str, ModelInfo] = {}


def register(info: ModelInfo) -> ModelInfo:
    if info.name in _MODELS:
        raise ValueError(f"model {info.name!r} is already registered")
    _MODELS[info.name] = info
    return info


def _load_builtin() -> None:
    # the catalogue modules register their entries on import (idempotent)
    from masklab.models import objects, semantic, universal  # noqa: F401


def list_models(pattern: str = "*", task: str | None = None) -> list[ModelInfo]:
    _load_builtin()
    return [m for k, m in sorted(_MODELS.items())
            if fnmatch.fnmatch(k, pattern) and (task is None or m.task == task)]


def get_info(name: str) -> ModelInfo:
    _load_builtin()
    try:
        return _MODELS[name]
    except KeyError:
        import difflib

        from masklab.errors import InputError

        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `masklab models`"
        raise InputError(f"unknown model {name!r}{hint}") from None


def load_weights_into(net, source, model_name: str, num_classes: int) -> None:
    """Load a weights source (registry name or local file) into ``net``, with one clear
    error when the tensors do not fit (wrong model, or wrong number of classes)."""
    from masklab.errors import WeightsError
    from masklab.weights import load_state_dict, resolve

    state = load_state_dict(resolve(source))
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even when not strict
        first = str(e).strip().splitlines()[-1].strip()
        raise WeightsError(f"{source}: weights do not fit {model_name} with {num_classes} "
                           f"classes ({first}); pass the right --num-classes") from None
    if missing or unexpected:
        raise WeightsError(f"{source}: weights do not fit {model_name} with {num_classes} "
                           f"classes (missing {list(missing)[:3]}, unexpected "
                           f"{list(unexpected)[:3]})")
