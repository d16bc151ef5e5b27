"""Background matting from a clean plate: "the world is your green screen".

Given a photo and a second shot of the same background without the subject, the subject is
where the two differ. The difference is made robust before it is trusted:

- global camera shift: the plate is moved onto the image by the translation that minimises
  the median difference (the median ignores the subject), searched on an image pyramid;
- small jitter left over (a pixel or two, rolling shutter, lens breathing): each pixel takes the
  smallest colour distance to the plate over a ``(2·jitter+1)²`` neighbourhood;
- sensor noise: both are lightly blurred, and the threshold is set from the noise level
  measured on the image itself (a low percentile of the distances, which is background).

The thresholded difference is cleaned (opening, closing, small islands removed, holes filled:
a subject whose colour matches the background in its interior stays whole), an unknown band
is put around its edge, and a solver (closed-form, KNN, coarse-to-fine) resolves the alpha.
"""

from __future__ import annotations

import numpy as np

from masklab.matting.closed_form import as_float_rgb
from masklab.matting.trimap import BG, FG, UNKNOWN


def estimate_shift(image: np.ndarray, plate: np.ndarray, max_shift: int = 16
                   ) -> tuple[int, int]:
    """The integer ``(dx, dy)`` with ``image(x, y) ≈ plate(x + dx, y + dy)``: the shift that
    minimises the median absolute grey difference (the median ignores the subject, which
    the plate lacks), searched coarse to fine on an image pyramid."""
    import cv2

    def grey(x):
        return cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2GRAY)

    pyr = [(grey(image), grey(plate))]
    levels = max(0, int(np.ceil(np.log2(max(max_shift, 2) / 2))))
    for _ in range(levels):
        a, b = pyr[-1]
        if min(a.shape) < 32:
            break
        pyr.append((cv2.pyrDown(a), cv2.pyrDown(b)))
    dx = dy = 0
    for level in range(len(pyr) - 1, -1, -1):
        a, b = pyr[level]
        if level < len(pyr) - 1:
            dx, dy = 2 * dx, 2 * dy
        r = int(np.ceil(max_shift / 2 ** level)) if level == len(pyr) - 1 else 1
        h, w = a.shape
        step = max(1, int(np.sqrt(h * w / 250_000)))  # subsample the median at full size
        best = (np.inf, dx, dy)
        for sy in range(dy - r, dy + r + 1):
            for sx in range(dx - r, dx + r + 1):
                if abs(sx) >= w // 2 or abs(sy) >= h // 2:
                    continue
                ya, yb = max(0, -sy), max(0, sy)
                xa, xb = max(0, -sx), max(0, sx)
                hh, ww = h - abs(sy), w - abs(sx)
                diff = np.abs(a[ya:ya + hh:step, xa:xa + ww:step]
                              - b[yb:yb + hh:step, xb:xb + ww:step])
                cost = float(np.median(diff))
                if cost < best[0] - 1e-9 or (abs(cost - best[0]) <= 1e-9
                                             and abs(sx) + abs(sy) < abs(best[1]) + abs(best[2])):
                    best = (cost, sx, sy)
        dx, dy = best[1], best[2]
    return dx, dy


def align_plate(image: np.ndarray, plate: np.ndarray, max_shift: int = 16
                ) -> tuple[np.ndarray, tuple[int, int]]:
    """``(plate moved onto image, (dx, dy))``; borders are reflected."""
    import cv2

    dx, dy = estimate_shift(image, plate, max_shift)
    if dx == 0 and dy == 0:
        return plate, (0, 0)
    h, w = plate.shape[:2]
    r = max(abs(dx), abs(dy))
    padded = cv2.copyMakeBorder(plate.astype(np.float32), r, r, r, r, cv2.BORDER_REFLECT)
    return padded[r + dy:r + dy + h, r + dx:r + dx + w].astype(np.float64), (dx, dy)


def plate_difference(image: np.ndarray, plate: np.ndarray, *, jitter: int = 1,
                     align: bool = True, blur: float = 1.0) -> np.ndarray:
    """Per-pixel colour distance ``(H, W)`` (RGB, [0, √3]) of ``image`` to the clean
    ``plate``, minimised over shifts up to ``jitter`` pixels."""
    import cv2

    img, bg = as_float_rgb(image), as_float_rgb(plate)
    if img.shape != bg.shape:
        raise ValueError(f"the plate is {bg.shape[1]}x{bg.shape[0]}, the image "
                         f"{img.shape[1]}x{img.shape[0]}")
    shift = (0, 0)
    if align:
        bg, shift = align_plate(img, bg)
    if blur > 0:
        img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), blur)
        bg = cv2.GaussianBlur(bg.astype(np.float32), (0, 0), blur)
    img, bg = img.astype(np.float32), bg.astype(np.float32)
    h, w = img.shape[:2]
    padded = cv2.copyMakeBorder(bg, jitter, jitter, jitter, jitter, cv2.BORDER_REFLECT)
    best = np.full((h, w), np.inf, np.float32)
    for dy in range(2 * jitter + 1):
        for dx in range(2 * jitter + 1):
            diff = img - padded[dy:dy + h, dx:dx + w]
            np.minimum(best, np.einsum("hwc,hwc->hw", diff, diff), out=best)
    best = np.sqrt(best)
    # the strips the shifted plate does not cover: repeat the nearest covered distances
    dx, dy = shift
    top, bottom = max(0, -dy) + jitter, max(0, dy) + jitter
    left, right = max(0, -dx) + jitter, max(0, dx) + jitter
    if top + bottom < h and left + right < w:
        best = cv2.copyMakeBorder(best[top:h - bottom, left:w - right], top, bottom, left,
                                  right, cv2.BORDER_REPLICATE)
    return best


def noise_threshold(distance: np.ndarray, factor: float = 4.0, floor: float = 0.04) -> float:
    """A foreground threshold from the noise level: ``factor`` × the 25th percentile of the
    distances (background in any photo where the subject covers under three quarters), at
    least ``floor``."""
    return max(floor, factor * float(np.percentile(distance, 25)))


def mask_from_difference(distance: np.ndarray, threshold: float | None = None, *,
                         min_area: float = 0.001) -> np.ndarray:
    """The subject's binary mask: distance above ``threshold`` (default: from the noise),
    opened and closed, islands under ``min_area`` of the image dropped, holes filled."""
    import cv2

    if threshold is None:
        threshold = noise_threshold(distance)
    m = (distance > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    m = cv2.morphologyEx(cv2.morphologyEx(m, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area * m.size
    m = keep[labels]
    # fill holes: background is what the border reaches
    outside = (~m).astype(np.uint8)
    n, labels = cv2.connectedComponents(outside, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    reached = np.isin(labels, border[border > 0])
    return ~reached


def trimap_from_plate(image: np.ndarray, plate: np.ndarray, *, band: int | None = None,
                      threshold: float | None = None, jitter: int = 1,
                      align: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(trimap, mask)`` of the subject from the image and its clean plate.

    Two masks bound the soft edge: ``low`` (any difference above the noise: reaches the
    outer end of a soft edge) and ``mid`` (over half the subject's typical difference: about
    α = ½). The gap between them measures how wide the edge is; the unknown band spans from
    ``band`` pixels outside ``low`` to twice the gap plus ``band`` inside ``mid``, so soft
    edges of any width (hair, motion blur) are left to the solver. ``mask`` is ``mid``.
    """
    return trimap_from_distance(plate_difference(image, plate, jitter=jitter, align=align),
                                band=band, threshold=threshold)


def trimap_from_distance(d: np.ndarray, *, band: int | None = None,
                         threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(trimap, mask)`` from a plate-difference map (see ``trimap_from_plate``)."""
    import cv2

    if threshold is None:
        threshold = noise_threshold(d)
    low = mask_from_difference(d, threshold)
    if not low.any():
        return np.zeros(low.shape, np.uint8), low
    mid = mask_from_difference(d, max(threshold, 0.5 * float(np.median(d[low]))))
    mid &= low
    if not mid.any():
        mid = low
    gap_px = cv2.distanceTransform((~mid).astype(np.uint8), cv2.DIST_L2, 5)[low & ~mid]
    gap = float(np.percentile(gap_px, 90)) if gap_px.size else 0.0
    if band is None:
        band = max(2, round(0.01 * float(np.sqrt(mid.sum()))))

    def ball(r):
        r = max(1, int(np.ceil(r)))
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    outer = cv2.dilate(low.astype(np.uint8), ball(band)) > 0
    inner = cv2.erode(mid.astype(np.uint8), ball(2 * gap + band)) > 0
    tri = np.full(low.shape, UNKNOWN, np.uint8)
    tri[~outer] = BG
    tri[inner] = FG
    return tri, mid


def background_matte(image: np.ndarray, plate: np.ndarray, *, solver: str = "cf",
                     coarse_to_fine: bool = False, band: int | None = None,
                     threshold: float | None = None, jitter: int = 1, align: bool = True,
                     **options) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, trimap)`` of the subject of ``image`` shot against ``plate``."""
    from masklab.matting import estimate_alpha

    tri, mask = trimap_from_plate(image, plate, band=band, threshold=threshold, jitter=jitter,
                                  align=align)
    if not mask.any():
        return np.zeros(mask.shape), tri
    return estimate_alpha(image, tri, solver, coarse_to_fine=coarse_to_fine, **options), tri
