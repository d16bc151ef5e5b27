"""Every in-network upsampling of the lecture, as a function and as a module.

All take ``(B, C, H, W)`` tensors. Conventions (checked against the lecture's 2×2 → 4×4
examples in ``tests/nn/test_upsample.py``):

- bed of nails: each input value at the top-left of its ``s × s`` block, zeros elsewhere;
- nearest: each value repeated over its block;
- bilinear: half-pixel centres (output pixel ``i`` samples input ``(i + 0.5) / s - 0.5``),
  clamped at the borders (PyTorch ``align_corners=False``);
- bicubic: the same sampling positions with Keys' cubic convolution kernel, ``a = -0.75``,
  border pixels replicated (PyTorch ``align_corners=False``, OpenCV ``INTER_CUBIC``). With
  ``[[1, 2], [3, 4]]`` it gives ``0.68 1.02 1.56 1.89 / 1.35 1.68 2.23 2.56 / ...``;
- max unpooling: values put back at the positions the paired max pooling remembered;
- transposed convolution: learnable, stride ``s`` (FCN initialises it as bilinear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KEYS_A = -0.75


def bed_of_nails(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Zeros except the top-left of each ``scale × scale`` block, which holds the input."""
    b, c, h, w = x.shape
    out = x.new_zeros(b, c, h * scale, w * scale)
    out[:, :, ::scale, ::scale] = x
    return out


def nearest(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    return x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def bilinear(x: torch.Tensor, scale: float = 2, size=None) -> torch.Tensor:
    return F.interpolate(x, size=size, scale_factor=None if size else scale, mode="bilinear",
                         align_corners=False)


def _keys(t: torch.Tensor, a: float = KEYS_A) -> torch.Tensor:
    t = t.abs()
    near = (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1
    far = a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _cubic_matrix(n_in: int, n_out: int, a: float, dtype, device) -> torch.Tensor:
    """``(n_out, n_in)`` interpolation weights along one axis (borders replicated)."""
    pos = (torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5
    base = torch.floor(pos)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for k in range(-1, 3):
        idx = base + k
        w = _keys(pos - idx, a)
        m.index_put_((torch.arange(n_out), idx.clamp(0, n_in - 1).long()), w, accumulate=True)
    return m.to(dtype=dtype, device=device)


def bicubic(x: torch.Tensor, scale: int = 2, size=None, a: float = KEYS_A) -> torch.Tensor:
    """Separable cubic convolution (Keys 1981) at half-pixel centres, replicated borders."""
    h, w = x.shape[-2:]
    oh, ow = size if size is not None else (int(h * scale), int(w * scale))
    mh = _cubic_matrix(h, oh, a, x.dtype, x.device)
    mw = _cubic_matrix(w, ow, a, x.dtype, x.device)
    return mh @ x @ mw.T


class MaxPoolWithIndices(nn.Module):
    """Max pooling that also returns where each maximum came from (for ``MaxUnpool``)."""

    def __init__(self, kernel: int = 2):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel, kernel, return_indices=True, ceil_mode=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pool(x)


def max_unpool(x: torch.Tensor, indices: torch.Tensor, scale: int = 2, size=None
               ) -> torch.Tensor:
    """Put each value back where the paired max pooling found it; zeros elsewhere."""
    out_size = None if size is None else list(size)
    return F.max_unpool2d(x, indices, scale, scale, output_size=out_size)


def bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """Weights making a transposed convolution a bilinear upsampler (Long et al. 2015)."""
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float32)
    filt = (1 - (og - center).abs() / factor)
    w = torch.zeros(channels, channels, kernel, kernel)
    w[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return w


class TransposedConvUp(nn.Module):
    """Learnable ``scale``× upsampling: a transposed convolution with kernel ``2·scale``,
    stride ``scale`` and padding ``scale / 2`` (exact ``scale``× output), bilinear start."""

    def __init__(self, in_channels: int, out_channels: int | None = None, scale: int = 2,
                 bilinear_init: bool = True):
        super().__init__()
        out_channels = out_channels or in_channels
        k = 2 * scale
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, k, stride=scale,
                                       padding=scale // 2, bias=False)
        if bilinear_init and in_channels == out_channels:
            with torch.no_grad():
                self.conv.weight.copy_(bilinear_kernel(in_channels, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


UPSAMPLING = ("nearest", "bilinear", "bicubic", "bed_of_nails", "transposed", "max_unpool")


class Upsample(nn.Module):
    """One upsampling step by ``scale`` with any method of ``UPSAMPLING``.

    ``max_unpool`` needs the indices of the paired pooling: call ``forward(x, indices)``.
    """

    def __init__(self, method: str, scale: int = 2, channels: int | None = None):
        super().__init__()
        if method not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {method!r}")
        if method == "transposed" and channels is None:
            raise ValueError("transposed upsampling needs the channel count")
        self.method, self.scale = method, scale
        self.up = TransposedConvUp(channels, channels, scale) if method == "transposed" \
            else None

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None, size=None
                ) -> torch.Tensor:
        m, s = self.method, self.scale
        if m == "max_unpool":
            if indices is None:
                raise ValueError("max_unpool needs the pooling indices")
            return max_unpool(x, indices, s, size)
        if m == "transposed":
            return self.up(x)
        if m == "bilinear":
            return bilinear(x, s)
        if m == "bicubic":
            return bicubic(x, s)
        if m == "bed_of_nails":
            return bed_of_nails(x, s)
        return nearest(x, s)
