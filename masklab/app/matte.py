"""Alpha matting of one annotation in the app: a trimap from the mask (an unknown band of
``band`` pixels each side) edited by trimap-brush strokes, solved (closed-form) on a crop
around the object, pasted into a full-size 8-bit alpha saved next to the database."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.matting.trimap import BG, FG, UNKNOWN

KINDS = {"unknown": UNKNOWN, "fg": FG, "bg": BG}


def trimap_for(mask: np.ndarray, band: int, strokes=()) -> np.ndarray:
    """The mask's trimap with ``strokes`` (``{"points", "width", "kind"}``) painted over it."""
    import cv2

    from masklab.matting import trimap_from_mask

    if not 1 <= int(band) <= 200:
        raise InputError(f"band must be 1 to 200 pixels, got {band}")
    tri = trimap_from_mask(mask, int(band))
    for s in strokes:
        kind = s.get("kind", "unknown")
        if kind not in KINDS:
            raise InputError(f"stroke kind must be one of {', '.join(KINDS)}, got {kind!r}")
        pts = np.round(np.asarray(s["points"], float)).astype(np.int32).reshape(-1, 2)
        if len(pts) == 0:
            continue
        width = max(1, round(float(s.get("width", 10))))
        layer = np.zeros(tri.shape, np.uint8)
        if len(pts) == 1:
            cv2.circle(layer, tuple(int(v) for v in pts[0]), max(1, width // 2), 1, -1)
        else:
            cv2.polylines(layer, [pts.reshape(-1, 1, 2)], False, 1, width)
        tri[layer > 0] = KINDS[kind]
    return tri


def matte_annotation(image: np.ndarray, mask: np.ndarray, *, band: int = 8, strokes=(),
                     margin: int = 16) -> np.ndarray:
    """A full-size uint8 alpha (0..255) for the object ``mask`` of ``image``."""
    from masklab.matting import closed_form_alpha

    tri = trimap_for(mask, band, strokes)
    h, w = mask.shape
    ys, xs = np.nonzero(tri != BG)
    if len(ys) == 0:
        raise InputError("the trimap has no foreground or unknown pixel")
    pad = margin + int(band)
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
    crop_tri = tri[y0:y1, x0:x1]
    alpha = np.zeros((h, w), np.float64)
    if (crop_tri == UNKNOWN).any():
        alpha[y0:y1, x0:x1] = closed_form_alpha(image[y0:y1, x0:x1], crop_tri)
    else:
        alpha[y0:y1, x0:x1] = crop_tri == FG
    return np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)


def write_alpha(path: Path, alpha: np.ndarray) -> Path:
    from masklab.io.images import write_label_png

    return write_label_png(path, alpha, palette=False)
