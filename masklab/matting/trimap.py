"""Trimaps: 0 background, 255 foreground, 128 unknown (the band a solver works on)."""

from __future__ import annotations

import numpy as np

BG, UNKNOWN, FG = 0, 128, 255


def trimap_from_mask(mask: np.ndarray, band: int | None = None, *,
                     proportional: float = 0.03) -> np.ndarray:
    """An unknown band around a binary mask's boundary: ``band`` pixels each side (eroded
    inside, dilated outside), or ``proportional`` × sqrt(mask area) when ``band`` is None."""
    import cv2

    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {m.shape}")
    if band is None:
        band = max(1, round(proportional * float(np.sqrt(m.sum()))))
    if band < 1:
        raise ValueError(f"band must be >= 1 pixel, got {band}")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    fg = cv2.erode(m.astype(np.uint8), kernel) > 0
    outer = cv2.dilate(m.astype(np.uint8), kernel) > 0
    tri = np.full(m.shape, UNKNOWN, np.uint8)
    tri[~outer] = BG
    tri[fg] = FG
    return tri


def trimap_from_scribbles(shape: tuple[int, int], foreground, background) -> np.ndarray:
    """Scribbled pixels are known (``Scribble`` objects or (H, W) bool maps); the rest is
    unknown."""
    h, w = shape
    tri = np.full((h, w), UNKNOWN, np.uint8)
    for value, strokes in ((FG, foreground), (BG, background)):
        for s in strokes:
            painted = s.rasterize(h, w) if hasattr(s, "rasterize") else np.asarray(s, bool)
            tri[painted] = value
    return tri


def split_trimap(trimap: np.ndarray, threshold: float = 0.1):
    """``(fg, bg, unknown)`` bool maps of a trimap in [0, 255] (uint8) or [0, 1] (float)."""
    t = np.asarray(trimap)
    t = t.astype(np.float64) / 255.0 if t.dtype == np.uint8 else t.astype(np.float64)
    if t.ndim == 3:
        t = t[..., 0]
    fg = t >= 1 - threshold
    bg = t <= threshold
    return fg, bg, ~(fg | bg)
