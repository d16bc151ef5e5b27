"""Closed-form matting (Levin, Lischinski & Weiss, PAMI 2008), solved on the unknown pixels only.

Within each 3×3 window the alpha is an affine function of colour; eliminating the affine
coefficients gives the matting Laplacian ``L``. With the trimap's known pixels fixed, the
alpha of the unknown pixels ``u`` solves ``L_uu α_u = -L_uk α_k``. Only windows that contain an
unknown pixel contribute to those rows, so ``L`` is built from those windows alone and the
system has one row per unknown pixel — never the whole image.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from masklab.matting.trimap import split_trimap


def _windows(unknown: np.ndarray, radius: int = 1) -> np.ndarray:
    """Centres (flat indices) of the windows holding at least one unknown pixel."""
    import cv2

    h, w = unknown.shape
    k = 2 * radius + 1
    near = cv2.dilate(unknown.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    near[:radius] = near[h - radius:] = False
    near[:, :radius] = near[:, w - radius:] = False
    return np.flatnonzero(near)


def _window_values(image: np.ndarray, centres: np.ndarray, eps: float, radius: int):
    """``(idx (W, n), values (W, n, n))``: the pixel indices of each window at ``centres``
    and its block of Laplacian entries."""
    w, c = image.shape[1:]
    k = 2 * radius + 1
    n = k * k
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    offsets = (dy * w + dx).ravel()
    idx = centres[:, None] + offsets[None, :]  # (W, n) pixel indices of each window
    flat = image.reshape(-1, c)
    win = flat[idx]  # (W, n, 3)
    mu = win.mean(axis=1, keepdims=True)
    d = win - mu
    cov = np.einsum("wni,wnj->wij", d, d) / n + (eps / n) * np.eye(c)
    inv = np.linalg.inv(cov)
    vals = (1.0 + np.einsum("wni,wij,wmj->wnm", d, inv, d, optimize=True)) / n
    vals = np.eye(n)[None] - vals
    return idx, vals


def _window_entries(image: np.ndarray, centres: np.ndarray, eps: float, radius: int):
    """``(rows, cols, values)`` of the Laplacian entries of the windows at ``centres``."""
    idx, vals = _window_values(image, centres, eps, radius)
    n = idx.shape[1]
    rows = np.repeat(idx, n, axis=1).ravel()
    cols = np.tile(idx, (1, n)).ravel()
    return rows, cols, vals.ravel()


def matting_laplacian(image: np.ndarray, centres: np.ndarray, eps: float = 1e-7,
                      radius: int = 1) -> sp.csr_matrix:
    """The matting Laplacian summed over the windows centred at ``centres``; ``image`` float
    ``(H, W, 3)`` in [0, 1]."""
    h, w = image.shape[:2]
    rows, cols, vals = _window_entries(image, centres, eps, radius)
    return sp.csr_matrix((vals, (rows, cols)), shape=(h * w, h * w))


def closed_form_alpha(image: np.ndarray, trimap: np.ndarray, *, eps: float = 1e-7,
                      tol: float = 1e-8) -> np.ndarray:
    """Alpha ``(H, W)`` float64 in [0, 1] of ``image`` (uint8 or float RGB) given a trimap."""
    img = as_float_rgb(image)
    fg, _, unknown = split_trimap(trimap)
    if img.shape[:2] != unknown.shape:
        raise ValueError(f"image {img.shape[:2]} and trimap {unknown.shape} differ")
    return solve_region(img, unknown, fg.astype(np.float64), eps=eps, tol=tol)


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float64 in [0, 1] from uint8 or float RGB(A)."""
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return img[..., :3].astype(np.float64) / 255.0
    img = img[..., :3].astype(np.float64)
    return img / 255.0 if img.max() > 1.0 else img


def solve_region(img: np.ndarray, unknown: np.ndarray, known: np.ndarray, *,
                 eps: float = 1e-7, tol: float = 1e-8) -> np.ndarray:
    """Closed-form alpha of the ``unknown`` pixels with every other pixel fixed at ``known``
    (0/1 from a trimap, or any fixed values — coarse-to-fine fixes them at an upsampled coarse
    solution). ``img`` float ``(H, W, 3)`` in [0, 1]."""
    alpha = np.asarray(known, np.float64)
    if not unknown.any():
        return alpha.copy()
    u = np.flatnonzero(unknown.ravel())
    where = np.full(unknown.size, -1, np.int64)
    where[u] = np.arange(len(u))
    centres = _windows(unknown)
    flat_alpha = alpha.ravel()
    a_parts, rhs = [], np.zeros(len(u))
    for start in range(0, len(centres), CHUNK):  # bounded memory at 4K
        idx, vals = _window_values(img, centres[start:start + CHUNK], eps, 1)
        # straight into the unknown-only system L_uu x = -L_uk alpha_k, window by window:
        # indices are mapped on the (W, 9) windows, not the (W, 81) entries
        wi = where[idx]
        is_u = wi >= 0
        known_alpha = np.where(is_u, 0.0, flat_alpha[idx])
        contrib = np.einsum("wnm,wm->wn", vals, known_alpha)
        rhs -= np.bincount(wi[is_u], weights=contrib[is_u], minlength=len(u))
        both = is_u[:, :, None] & is_u[:, None, :]
        n = idx.shape[1]
        rows = np.broadcast_to(wi[:, :, None], (len(wi), n, n))[both]
        cols = np.broadcast_to(wi[:, None, :], (len(wi), n, n))[both]
        a_parts.append(sp.coo_matrix((vals[both], (rows, cols)),
                                     shape=(len(u), len(u))).tocsc())
        del idx, vals, rows, cols, both
    a_uu = a_parts[0]
    for part in a_parts[1:]:
        a_uu = a_uu + part
    sol = _solve(a_uu, rhs, tol)
    out = flat_alpha.copy()
    out[u] = sol
    return np.clip(out, 0.0, 1.0).reshape(alpha.shape)


def _solve(a: sp.csc_matrix, b: np.ndarray, tol: float) -> np.ndarray:
    """A sparse direct solve (SuperLU, minimum-degree ordering of A + Aᵀ, no pivoting: about
    1 s for 140k unknown pixels) up to ``DIRECT_MAX`` unknowns; incomplete-Cholesky
    preconditioned conjugate gradients beyond, where a factorisation would not fit in
    memory. A tiny ridge keeps pixels far from any known value well-posed."""
    import scipy.sparse.linalg as sla

    n = a.shape[0]
    a = (a + sp.identity(n, format="csc") * 1e-10).tocsc()
    if n <= DIRECT_MAX:
        # symmetric positive definite: symmetric ordering, no pivoting (a Cholesky in LU form)
        lu = sla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                      options={"SymmetricMode": True})
        return lu.solve(b)
    from masklab.matting.ichol import ichol_cg

    return ichol_cg(a, b, tol=tol)


DIRECT_MAX = 400_000
CHUNK = 250_000  # windows per batch of Laplacian entries (~1.2 GB of temporaries)
