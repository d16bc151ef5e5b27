"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015) with configurable depth, width and
upsampling method.

``depth`` down-sampling steps, channels ``width · 2^level``; each decoder step upsamples,
concatenates the encoder features of the same scale and applies two 3×3 conv + BN + ReLU.
``upsampling`` is any of ``masklab.nn.upsample.UPSAMPLING``; with ``"max_unpool"`` the encoder
pools with indices and the decoder unpools there (SegNet's decoder, with skips). Any input
size: padded to a multiple of ``2^depth``, cropped back. ``lcn=True`` feeds the network the
image and its local contrast normalisation (``local_contrast_norm``, as SegNet's inputs were
normalised) side by side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from masklab.nn.fcn import conv_block
from masklab.nn.upsample import Upsample


def local_contrast_norm(x: torch.Tensor, size: int = 9, sigma: float = 2.0,
                        eps: float = 1e-4) -> torch.Tensor:
    """Local contrast normalisation (Jarrett et al., ICCV 2009), per channel: subtract the
    Gaussian-weighted local mean, divide by the local standard deviation or, where that is
    smaller, its mean over the image. Invariant to ``a * x + b`` per channel (``a > 0``), so
    brightness and contrast changes of the whole image leave it unchanged."""
    c = x.shape[1]
    r = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    g = (g[:, None] * g[None, :]) / g.sum() ** 2
    k = g.expand(c, 1, size, size)
    pad = size // 2

    def blur(t):
        return F.conv2d(F.pad(t, (pad, pad, pad, pad), mode="reflect"), k, groups=c)

    v = x - blur(x)
    sd = blur(v * v).clamp_min(0).sqrt()
    floor = sd.mean(dim=(-2, -1), keepdim=True)
    return v / torch.maximum(sd, floor).clamp_min(eps)


class UNet(nn.Module):
    def __init__(self, num_classes: int, depth: int = 4, width: int = 32,
                 upsampling: str = "bilinear", in_channels: int = 3, norm: str = "batch",
                 lcn: bool = False):
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth, self.upsampling, self.lcn = depth, upsampling, lcn
        ch = [width * 2 ** i for i in range(depth + 1)]
        first = in_channels * (2 if lcn else 1)
        self.enc = nn.ModuleList([conv_block(first if i == 0 else ch[i - 1], ch[i],
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
        if self.lcn:
            x = torch.cat([x, local_contrast_norm(x)], dim=1)
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
