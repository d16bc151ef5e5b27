"""Sine position encodings computed once per shape.

SAM 2 / SAM 2.1 / EdgeTAM's vision neck asks its sine position encoding for every feature
level of every image; transformers caches only the last shape asked (``lru_cache(maxsize=1)``),
so with four levels per image every call recomputes it — about 0.1 s per frame on 2 cores.
The encoding depends on the shape, device and dtype only (when no padding mask is given),
so ``cache_position_encodings(model)`` keeps one tensor per shape on each such module. The
tensors are the ones the model would compute (bitwise), and nothing writes into them.
"""

from __future__ import annotations

import torch
from torch import nn


def cache_position_encodings(model: nn.Module) -> int:
    """Wrap the ``forward`` of every sine position encoding module of ``model`` with a
    per-shape cache; returns how many modules were wrapped."""
    n = 0
    for module in model.modules():
        if type(module).__name__.endswith("SinePositionEmbedding") and hasattr(
                module, "build_sine_position_embedding"):
            module.forward = _Cached(module.forward)
            n += 1
    return n


class _Cached:
    def __init__(self, forward):
        self.forward = forward
        self.cache: dict[tuple, torch.Tensor] = {}
        self.misses = 0

    def __call__(self, shape, device, dtype, mask=None):
        if mask is not None:  # padding masks make each call different
            return self.forward(shape, device, dtype, mask)
        key = (tuple(shape), str(device), dtype)
        if key not in self.cache:
            if len(self.cache) >= 32:  # a model sees a few fixed shapes; bound it anyway
                self.cache.clear()
            self.cache[key] = self.forward(shape, device, dtype)
            self.misses += 1
        return self.cache[key]
