"""Coarse-to-fine matting — the idea of Background Matting v2 (Lin et al., CVPR 2021) with the
classical solvers: solve the whole matte at low resolution, then re-solve at full resolution
only where the result is in doubt.

1. The image and trimap are downsampled by ``scale`` (a power of two by default: ¼ at 1080p,
   ⅛ at 4K, as BMv2); the chosen solver (cf, knn, vitmatte) finds the coarse alpha.
2. It is upsampled with the full-resolution image as guide (a colour guided filter across
   scales: the colour-line model of closed-form matting), so edges come back sharp;
   trimap-known pixels keep their 0/1.
3. Each unknown pixel is scored by how far the upsampled alpha is from satisfying closed-form
   matting's equations at full resolution — ``|L α|``, which is nine times α minus its guided
   filter, so a few box filters rather than a sparse matrix.
4. The ``refine`` fraction of the unknown pixels with the highest score is re-solved with
   closed-form matting at full resolution, every other pixel fixed at the upsampled value,
   block by block (``block``² tiles with an overlap, one Gauss–Seidel sweep).

Work and memory follow the coarse size and the refined fraction, not the image size: a 4K
image needs the coarse system, a few full-resolution maps and one block at a time.
"""

from __future__ import annotations

import numpy as np

from masklab.matting.closed_form import as_float_rgb, solve_region
from masklab.matting.trimap import BG, FG, UNKNOWN, split_trimap

KNOWN_COVER = 0.5


def downsample_trimap(trimap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A trimap at ``size`` (w, h): a coarse pixel is known when at least ``KNOWN_COVER`` of
    the full-resolution pixels it covers are known with that value."""
    import cv2

    fg, bg, _ = split_trimap(trimap)
    f = cv2.resize(fg.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    b = cv2.resize(bg.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    out = np.full(f.shape, UNKNOWN, np.uint8)
    out[f >= KNOWN_COVER] = FG
    out[b >= KNOWN_COVER] = BG
    return out


def default_scale(h: int, w: int, coarse_side: int = 480) -> float:
    """A power of two (exact block averaging) that brings the long side near ``coarse_side``:
    1 up to 959 px, ½ for 960–1919, ¼ for 1080p (1920 px), ⅛ for 4K (3840 px) — BMv2's
    choices for HD and 4K."""
    k = max(0, int(np.floor(np.log2(max(h, w) / coarse_side))))
    return 2.0 ** -k


def coarse_to_fine_alpha(image: np.ndarray, trimap: np.ndarray, *, solver: str = "cf",
                         scale: float | None = None, refine: float = 0.2, block: int = 160,
                         guided: bool = True, margin: int = 2,
                         eps: float = 1e-7, return_info: bool = False, **options):
    """Alpha ``(H, W)`` of ``image`` given ``trimap``, solved coarse-to-fine.

    ``scale``: the coarse resolution (default ``default_scale``: images under 960 px are
    solved directly); ``refine``: the fraction of the unknown pixels re-solved at full
    resolution (0 = the upsampled coarse matte only); ``block``: side of the refinement
    blocks; ``guided``: guided (else bilinear) upsampling; ``margin``: how far the refined
    region reaches beyond the pixels that need it. With ``return_info`` also a dict with the
    coarse size, the refined fraction and the refined pixels.
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
        up = guided_upsample(small, coarse_alpha, img) if guided else cv2.resize(
            coarse_alpha.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR
        ).astype(np.float64)
    up = np.clip(up, 0.0, 1.0)
    up[fg], up[bg] = 1.0, 0.0
    region = _select_pixels(img, up, unknown, refine, margin, eps) if scale < 1.0 else \
        np.zeros_like(unknown)
    alpha = refine_blocks(img, region, up, eps=eps, block=block) if region.any() else up
    if not return_info:
        return alpha
    n_unknown = int(unknown.sum())
    return alpha, {"coarse_size": (size[1], size[0]), "region": region,
                   "refined": float(region.sum() / n_unknown) if n_unknown else 0.0}


def _select_pixels(img: np.ndarray, up: np.ndarray, unknown: np.ndarray, refine: float,
                   margin: int, eps: float) -> np.ndarray:
    """The ``refine`` fraction of the unknown pixels where the upsampled alpha breaks
    closed-form matting's equations at full resolution the most (their residual, spread over
    ``margin`` pixels so the refined region's border sits where the coarse alpha holds)."""
    import cv2

    if refine <= 0.0 or not unknown.any():
        return np.zeros_like(unknown)
    ys, xs = np.nonzero(unknown)
    y0, y1 = max(0, ys.min() - 2), min(unknown.shape[0], ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(unknown.shape[1], xs.max() + 3)
    res = colour_line_residual(img[y0:y1, x0:x1], up[y0:y1, x0:x1], eps)
    k = 2 * margin + 1
    res = cv2.dilate(res.astype(np.float32), cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                                        (k, k)))
    inside = unknown[y0:y1, x0:x1]
    score = res[inside]
    n = int(np.ceil(refine * score.size))
    if n >= score.size:
        return unknown.copy()
    cut = np.partition(score, score.size - n)[score.size - n]
    region = np.zeros_like(unknown)
    sub = region[y0:y1, x0:x1]
    sub[inside] = score >= cut
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


def guided_upsample(small: np.ndarray, alpha: np.ndarray, full: np.ndarray, radius: int = 1,
                    eps: float = 1e-4) -> np.ndarray:
    """Upsample a coarse alpha with the full-resolution image as guide (He, Sun & Tang's
    guided filter with a colour guide, applied across scales as in the fast guided filter):
    fit α ≈ aᵀI + b in each coarse window, average the coefficients, upsample them and apply
    them to the full-resolution colours — the same colour-line model closed-form matting
    rests on, so edges come back sharp where bilinear upsampling would blur them."""
    import cv2

    a, b = _guided_coefficients(small, alpha, radius, eps)
    h, w = full.shape[:2]
    a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
    q = np.einsum("hwc,hwc->hw", a, full.astype(np.float32)) + b
    return np.clip(q, 0.0, 1.0).astype(np.float64)


def colour_line_residual(img: np.ndarray, alpha: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """``|(L α)_i| / 9``: how far ``alpha`` is from satisfying closed-form matting's equations
    at each pixel. For the matting Laplacian ``(L α)_i = Σ_{w∋i} (α_i − a_wᵀI_i − b_w)`` with
    ``a_w, b_w`` the regularised affine fit of α in window w — nine times α minus its guided
    filter (radius 1) — so it costs a few box filters, not a sparse matrix."""
    a, b = _guided_coefficients(img, alpha, 1, eps)
    q = np.einsum("hwc,hwc->hw", a, img.astype(np.float32)) + b
    return np.abs(alpha - q)


def _guided_coefficients(img: np.ndarray, p: np.ndarray, radius: int, eps: float):
    """Box-averaged coefficients ``(a (H, W, 3), b (H, W))`` of the colour guided filter."""
    import cv2

    def box(x):
        k = 2 * radius + 1
        return cv2.blur(x, (k, k), borderType=cv2.BORDER_REFLECT)

    img = img.astype(np.float32)
    p = p.astype(np.float32)
    mu, mp = box(img), box(p)
    cov_ip = box(img * p[..., None]) - mu * mp[..., None]
    var = np.empty((*img.shape[:2], 3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            var[..., i, j] = var[..., j, i] = (box(img[..., i] * img[..., j])
                                               - mu[..., i] * mu[..., j])
    n = (2 * radius + 1) ** 2
    var += (eps / n) * np.eye(3, dtype=np.float32)  # Levin et al.'s ε/|w| regulariser
    a = np.linalg.solve(var.astype(np.float64), cov_ip[..., None].astype(np.float64))[..., 0]
    b = mp - np.einsum("hwc,hwc->hw", a, mu)
    return box(a.astype(np.float32)), box(b.astype(np.float32))
