"""Coarse-to-fine matting — the idea of Background Matting v2 (Lin et al., CVPR 2021) with the
classical solvers: solve the whole matte at low resolution, then re-solve at full resolution
only the patches where the upsampled matte is uncertain.

1. The image and trimap are downsampled by ``scale``; the chosen solver finds the coarse alpha.
2. It is upsampled (bilinear) to full resolution; trimap-known pixels keep their 0/1.
3. The full-resolution unknown region is cut into ``tile``×``tile`` patches, each scored by
   its uncertainty: the mean of 4α(1−α) (1 at α = ½, 0 at 0 or 1) plus the local contrast of
   the image inside the patch, where a coarse matte misses detail.
4. The highest-scoring patches holding ``refine`` of the unknown pixels are re-solved with
   closed-form matting at full resolution, every other pixel fixed at the upsampled coarse
   value (so patch borders stay continuous), starting from the coarse solution.

Work and memory follow the refined fraction, not the image size: a 4K image needs the
coarse system plus the refined patches only.
"""

from __future__ import annotations

import numpy as np

from masklab.matting.closed_form import as_float_rgb, solve_region
from masklab.matting.trimap import BG, FG, UNKNOWN, split_trimap


def downsample_trimap(trimap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A trimap at ``size`` (w, h): a coarse pixel is known only when every full-resolution
    pixel it covers is known with the same value."""
    import cv2

    fg, bg, _ = split_trimap(trimap)
    f = cv2.resize(fg.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(bg.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    out = np.full(f.shape, UNKNOWN, np.uint8)
    out[f >= KNOWN_COVER] = FG
    out[b >= KNOWN_COVER] = BG
    return out


KNOWN_COVER = 0.5


def default_scale(h: int, w: int, coarse_side: int = 480) -> float:
    """A power of two (exact block averaging) that brings the long side near ``coarse_side``:
    1 up to 959 px, ½ for 960–1919, ¼ for 1080p (1920 px), ⅛ for 4K (3840 px) — BMv2's
    choices for HD and 4K."""
    k = max(0, int(np.floor(np.log2(max(h, w) / coarse_side))))
    return 2.0 ** -k


def coarse_to_fine_alpha(image: np.ndarray, trimap: np.ndarray, *, solver: str = "cf",
                         scale: float | None = None, refine: float = 0.3, block: int = 160,
                         eps: float = 1e-7, return_info: bool = False, **options):
    """Alpha ``(H, W)`` of ``image`` given ``trimap``, solved coarse-to-fine.

    ``scale``: the coarse resolution (default: long side about 1/4 of the image, at least
    512 px — images smaller than that are solved directly); ``refine``: the fraction of the
    unknown pixels re-solved at full resolution (0 = upsampled coarse matte only, 1 = every
    unknown pixel); ``tile``: patch side in pixels. With ``return_info`` also a dict with the
    coarse size, refined fraction and patch mask.
    """
    import cv2

    from masklab.matting import estimate_alpha

    if not 0.0 <= refine <= 1.0:
        raise ValueError(f"refine must be in [0, 1], got {refine}")
    img = as_float_rgb(image)
    h, w = img.shape[:2]
    fg, bg, unknown = split_trimap(trimap)
    if unknown.shape != (h, w):
        raise ValueError(f"image {(h, w)} and trimap {unknown.shape} differ")
    if scale is None:
        scale = default_scale(h, w)
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale == 1.0:
        coarse_alpha = estimate_alpha(img, trimap, solver, **options)
        up = coarse_alpha
    else:
        small = cv2.resize(img.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse_alpha = estimate_alpha(small.astype(np.float64), downsample_trimap(trimap, size),
                                      solver, **options)
        up = cv2.resize(coarse_alpha.astype(np.float32), (w, h),
                        interpolation=cv2.INTER_LINEAR).astype(np.float64)
    up = np.clip(up, 0.0, 1.0)
    up[fg], up[bg] = 1.0, 0.0
    margin = max(2, round(2.0 / scale))
    region = _select_pixels(img, up, unknown, refine, margin) if scale < 1.0 else \
        np.zeros_like(unknown)
    alpha = refine_blocks(img, region, up, eps=eps, block=block) if region.any() else up
    if not return_info:
        return alpha
    n_unknown = int(unknown.sum())
    return alpha, {"coarse_size": (size[1], size[0]), "patches": region,
                   "refined": float(region.sum() / n_unknown) if n_unknown else 0.0}


def _select_pixels(img: np.ndarray, up: np.ndarray, unknown: np.ndarray, refine: float,
                   margin: int) -> np.ndarray:
    """The ``refine`` fraction of the unknown pixels nearest to an uncertain coarse alpha:
    uncertainty 4α(1−α), spread over ``margin`` pixels (max filter) so that the refined
    region reaches out to where the coarse matte is confident — its border values then hold
    for the full-resolution solve — plus a little image contrast to rank ties."""
    import cv2

    if refine <= 0.0 or not unknown.any():
        return np.zeros_like(unknown)
    uncertain = (4.0 * up * (1.0 - up)).astype(np.float32)
    k = 2 * margin + 1
    spread = cv2.dilate(uncertain, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    gray = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)
    edges = np.minimum(np.abs(cv2.Laplacian(gray, cv2.CV_32F, ksize=3)), 1.0)
    score = spread[unknown] + 0.01 * edges[unknown]
    n = int(np.ceil(refine * score.size))
    if n >= score.size:
        return unknown.copy()
    cut = np.partition(score, score.size - n)[score.size - n]
    region = np.zeros_like(unknown)
    region[unknown] = score >= cut
    return region


def refine_blocks(img: np.ndarray, region: np.ndarray, alpha: np.ndarray, *, eps: float = 1e-7,
                  block: int = 160, overlap: int = 16) -> np.ndarray:
    """Re-solve ``alpha`` on ``region`` block by block: each ``block``² tile, grown by
    ``overlap`` pixels, is solved with every pixel outside its share of the region fixed at
    the current alpha; only the tile's own pixels are kept. Tiles go in raster order, so a
    tile's overlap with the tiles above and to the left holds their refined values (one
    Gauss–Seidel sweep). Each solve is small, so the cost grows linearly with the region
    — one sparse factorisation of a large band would not (SuperLU's fill-in)."""
    out = alpha.copy()
    h, w = region.shape
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            core = region[y0:y0 + block, x0:x0 + block]
            if not core.any():
                continue
            ya, yb = max(0, y0 - overlap), min(h, y0 + block + overlap)
            xa, xb = max(0, x0 - overlap), min(w, x0 + block + overlap)
            unknown = region[ya:yb, xa:xb].copy()
            unknown[[0, -1], :] = False  # the rim stays fixed: whole windows only
            unknown[:, [0, -1]] = False
            if not unknown.any():
                continue
            solved = solve_region(img[ya:yb, xa:xb], unknown, out[ya:yb, xa:xb], eps=eps)
            cy, cx = y0 - ya, x0 - xa
            keep = core[:solved.shape[0] - cy, :solved.shape[1] - cx]
            dst = out[y0:y0 + keep.shape[0], x0:x0 + keep.shape[1]]
            dst[keep] = solved[cy:cy + keep.shape[0], cx:cx + keep.shape[1]][keep]
    return out
