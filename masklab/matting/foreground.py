"""Foreground colours for compositing without colour bleed.

Multi-level foreground estimation (Germer, Uelwer, Conrad & Harmeling, 2020): solve, for F and
B, ``min Σ (α F + (1-α) B - I)² + Σ_neighbours (ε + |Δα|)(|ΔF|² + |ΔB|²)`` coarse to fine — at
each level, the previous level's F and B are upsampled and refined by Gauss–Seidel sweeps of
the per-pixel 2×2 normal equations. Where α = 0 the foreground is carried in from nearby
pixels, so a new background never shows the old one through semi-transparent hair.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sweeps(img, alpha, fg, bg, iterations, reg, grad_weight):
    h, w, c = img.shape
    for _ in range(iterations):
        for y in range(h):
            for x in range(w):
                a0 = alpha[y, x]
                a1 = 1.0 - a0
                m00 = a0 * a0
                m01 = a0 * a1
                m11 = a1 * a1
                r0 = np.empty(c)
                r1 = np.empty(c)
                for k in range(c):
                    r0[k] = a0 * img[y, x, k]
                    r1[k] = a1 * img[y, x, k]
                for d in range(4):
                    ny = y + (d == 0) - (d == 1)
                    nx = x + (d == 2) - (d == 3)
                    if ny < 0 or ny >= h or nx < 0 or nx >= w:
                        continue
                    da = reg + grad_weight * abs(a0 - alpha[ny, nx])
                    m00 += da
                    m11 += da
                    for k in range(c):
                        r0[k] += da * fg[ny, nx, k]
                        r1[k] += da * bg[ny, nx, k]
                det = m00 * m11 - m01 * m01
                if det <= 1e-12:  # a lone pixel: F and B are not determined, keep them
                    continue
                i00 = m11 / det
                i01 = -m01 / det
                i11 = m00 / det
                for k in range(c):
                    f = i00 * r0[k] + i01 * r1[k]
                    b = i01 * r0[k] + i11 * r1[k]
                    fg[y, x, k] = min(1.0, max(0.0, f))
                    bg[y, x, k] = min(1.0, max(0.0, b))


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    return cv2.resize(a, (w, h), interpolation=cv2.INTER_NEAREST)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, *, regularization: float = 1e-5,
                        small_iterations: int = 10, big_iterations: int = 2,
                        small_size: int = 32, gradient_weight: float = 1.0,
                        return_background: bool = False):
    """Foreground (and background) colours ``(H, W, 3)`` float in [0, 1] of ``image``
    (uint8 or float) given ``alpha`` (H, W) in [0, 1]."""
    img = np.asarray(image, np.float64)[..., :3]
    if img.max() > 1.0:
        img = img / 255.0
    alpha = np.clip(np.asarray(alpha, np.float64), 0.0, 1.0)
    if alpha.shape != img.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} and image {img.shape[:2]} differ")
    h0, w0 = alpha.shape
    levels = max(1, math.ceil(math.log2(max(h0, w0))))
    fg = img.mean(axis=(0, 1)).reshape(1, 1, 3).copy()
    bg = fg.copy()
    for level in range(levels + 1):
        h = round(h0 ** (level / levels))
        w = round(w0 ** (level / levels))
        im_l = np.ascontiguousarray(_resize(img, h, w).reshape(h, w, 3))
        a_l = np.ascontiguousarray(_resize(alpha, h, w).reshape(h, w))
        fg = np.ascontiguousarray(_resize(fg, h, w).reshape(h, w, 3))
        bg = np.ascontiguousarray(_resize(bg, h, w).reshape(h, w, 3))
        n = small_iterations if (w <= small_size or h <= small_size) else big_iterations
        _sweeps(im_l, a_l, fg, bg, n, regularization, gradient_weight)
    return (fg, bg) if return_background else fg
