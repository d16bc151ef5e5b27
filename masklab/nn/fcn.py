"""FCN (Long, Shelhamer & Darrell, CVPR 2015) on a VGG-like encoder, with the 32s/16s/8s skips.

The encoder has five stages of 3×3 conv + BN + ReLU, each ending in 2×2 max pooling
(strides 2 … 32). ``fcn32s`` scores the stride-32 features and upsamples ×32 with a
bilinear-initialised transposed convolution; ``fcn16s`` first adds the upsampled score to a
score of the stride-16 features, ``fcn8s`` also the stride-8 ones. Any input size: the input
is padded to a multiple of 32 and the output cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklab.nn.upsample import TransposedConvUp

NORMS = ("batch", "group")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``batch`` (BatchNorm) or ``group`` (GroupNorm, 8 groups or fewer: per-sample
    statistics, the same at any batch size and on any number of processes)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")


def conv_block(cin: int, cout: int, n: int = 2, norm: str = "batch") -> nn.Sequential:
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
                   norm_layer(norm, cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FCN(nn.Module):
    """``FCN(num_classes, variant="8s", width=32)``: logits ``(B, K, H, W)``."""

    def __init__(self, num_classes: int, variant: str = "8s", width: int = 32,
                 in_channels: int = 3):
        super().__init__()
        if variant not in ("32s", "16s", "8s"):
            raise ValueError(f"FCN variant must be 32s, 16s or 8s, got {variant!r}")
        self.variant = variant
        widths = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        reps = [2, 2, 3, 3, 3]
        stages, cin = [], in_channels
        for wd, r in zip(widths, reps, strict=True):
            stages.append(conv_block(cin, wd, r))
            cin = wd
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(conv_block(widths[4], 16 * width, 1), nn.Dropout2d(0.1),
                                  nn.Conv2d(16 * width, num_classes, 1))
        self.score16 = nn.Conv2d(widths[3], num_classes, 1)
        self.score8 = nn.Conv2d(widths[2], num_classes, 1)
        self.up2a = TransposedConvUp(num_classes, num_classes, 2)
        self.up2b = TransposedConvUp(num_classes, num_classes, 2)
        final = {"32s": 32, "16s": 16, "8s": 8}[variant]
        self.up_final = TransposedConvUp(num_classes, num_classes, final)
        for conv in (self.score16, self.score8):  # skips start at zero, as in the paper
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        x = F.pad(x, (0, pw, 0, ph))
        feats = []
        for stage in self.stages:
            x = F.max_pool2d(stage(x), 2)
            feats.append(x)
        score = self.head(feats[4])
        if self.variant in ("16s", "8s"):
            score = self.up2a(score) + self.score16(feats[3])
        if self.variant == "8s":
            score = self.up2b(score) + self.score8(feats[2])
        return self.up_final(score)[..., :h, :w]
