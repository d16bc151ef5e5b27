"""Compositing ``I' = α F + (1 - α) B'`` onto a new background, and RGBA cut-outs."""

from __future__ import annotations

import numpy as np


def _float(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    return a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)


def background_like(image: np.ndarray, background) -> np.ndarray:
    """A ``(H, W, 3)`` float background for ``image``: an image (scaled to cover, centred
    crop), an RGB colour ``(r, g, b)`` (0–255), or ``"blur"`` (the original, blurred)."""
    import cv2

    h, w = image.shape[:2]
    if isinstance(background, str):
        if background != "blur":
            raise ValueError(f"background must be an image, a colour or 'blur', got "
                             f"{background!r}")
        k = max(3, (max(h, w) // 40) | 1)
        return cv2.GaussianBlur(_float(image)[..., :3], (k, k), 0)
    bg = np.asarray(background)
    if bg.ndim == 1 and bg.size == 3:
        return np.broadcast_to(bg.astype(np.float64) / 255.0, (h, w, 3)).copy()
    bg = _float(bg)[..., :3]
    if bg.shape[:2] != (h, w):
        s = max(h / bg.shape[0], w / bg.shape[1])
        nh, nw = max(h, round(bg.shape[0] * s)), max(w, round(bg.shape[1] * s))
        bg = cv2.resize(bg, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else
                        cv2.INTER_LINEAR)
        y0, x0 = (nh - h) // 2, (nw - w) // 2
        bg = bg[y0:y0 + h, x0:x0 + w]
    return bg


def composite(foreground: np.ndarray, alpha: np.ndarray, background) -> np.ndarray:
    """``α F + (1 - α) B`` as uint8 ``(H, W, 3)``; ``background`` as in ``background_like``."""
    f = _float(foreground)[..., :3]
    a = np.clip(_float(alpha), 0.0, 1.0)
    if a.ndim == 3:
        a = a[..., 0]
    b = background_like(f, background)
    out = a[..., None] * f + (1.0 - a[..., None]) * b
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def rgba(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """An ``(H, W, 4)`` uint8 cut-out: foreground colours with alpha."""
    f = np.clip(np.round(_float(foreground)[..., :3] * 255.0), 0, 255).astype(np.uint8)
    a = np.clip(np.round(np.clip(_float(alpha), 0, 1) * 255.0), 0, 255).astype(np.uint8)
    return np.dstack([f, a if a.ndim == 2 else a[..., 0]])
