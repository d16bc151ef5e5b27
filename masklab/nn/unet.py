"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) with configurable depth, width and
upsampling method.

``depth`` down-sampling steps, channels ``width · 2^level``; each decoder step upsamples,
concatenates the encoder features of the same scale and applies two 3×3 conv + BN + ReLU.
``upsampling`` is any of ``masklab.nn.upsample.UPSAMPLING``; with ``"max_unpool"`` the encoder
pools with indices and the decoder unpools there (SegNet's decoder, with skips). Any input
size: padded to a multiple of ``2^depth``, cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklab.nn.fcn import conv_block
from masklab.nn.upsample import Upsample


class UNet(nn.Module):
    def __init__(self, num_classes: int, depth: int = 4, width: int = 32,
                 upsampling: str = "bilinear", in_channels: int = 3, norm: str = "batch"):
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth, self.upsampling = depth, upsampling
        ch = [width * 2 ** i for i in range(depth + 1)]
        self.enc = nn.ModuleList([conv_block(in_channels if i == 0 else ch[i - 1], ch[i],
                                             norm=norm) for i in range(depth + 1)])
        self.ups = nn.ModuleList()
        self.reduce = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(depth, 0, -1):
            self.ups.append(Upsample(upsampling, 2, channels=ch[i]))
            self.reduce.append(nn.Conv2d(ch[i], ch[i - 1], 1))
            self.dec.append(conv_block(2 * ch[i - 1], ch[i - 1], norm=norm))
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, (-w) % m, 0, (-h) % m))
        skips, indices = [], []
        for i, block in enumerate(self.enc):
            if i > 0:
                if self.upsampling == "max_unpool":
                    x, idx = F.max_pool2d(x, 2, return_indices=True)
                    indices.append(idx)
                else:
                    x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for k, (up, red, dec) in enumerate(zip(self.ups, self.reduce, self.dec, strict=True)):
            level = self.depth - 1 - k
            skip = skips[level]
            if self.upsampling == "max_unpool":
                x = red(x)  # unpool needs the channel count the pooled tensor had
                x = up(x, indices[level], size=skip.shape[-2:])
            else:
                x = red(up(x))
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)[..., :h, :w]
