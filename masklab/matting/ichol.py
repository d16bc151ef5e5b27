"""Conjugate gradients preconditioned with an incomplete Cholesky factorisation, IC(0).

IC(0) keeps the sparsity of the lower triangle of ``A`` (no fill-in), so it costs about as
much memory as ``A`` itself: the large matting systems (4K images, ~10^6 unknown pixels) that
a direct factorisation cannot hold. The matting Laplacian is not an M-matrix, so a pivot can
turn non-positive; the factorisation is then retried on ``A + s·diag(A)`` with growing ``s``
(Manteuffel's shift), as MATLAB's ``ichol`` does with ``diagcomp``.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp


@numba.njit(cache=True, nogil=True)
def _ic0(indptr, rows, vals, n):
    """Left-looking IC(0) of a CSC lower triangle with sorted rows, diagonal first in each
    column. Returns (values, ok)."""
    lv = vals.copy()
    first = indptr[:-1].copy()  # per column: position of the next row to visit
    head = np.full(n, -1, np.int64)  # per row: a linked list of columns with that next row
    nxt = np.full(n, -1, np.int64)
    pos = np.full(n, -1, np.int64)  # row -> position in the current column
    for j in range(n):
        for p in range(indptr[j], indptr[j + 1]):
            pos[rows[p]] = p
        k = head[j]
        head[j] = -1
        while k != -1:
            knext = nxt[k]
            p = first[k]
            ljk = lv[p]
            for q in range(p, indptr[k + 1]):
                t = pos[rows[q]]
                if t >= 0:
                    lv[t] -= lv[q] * ljk
            p += 1
            first[k] = p
            if p < indptr[k + 1]:
                r = rows[p]
                nxt[k] = head[r]
                head[r] = k
            k = knext
        d = lv[indptr[j]]
        if d <= 0.0 or rows[indptr[j]] != j:
            return lv, False
        d = np.sqrt(d)
        lv[indptr[j]] = d
        for p in range(indptr[j] + 1, indptr[j + 1]):
            lv[p] /= d
            pos[rows[p]] = -1
        pos[j] = -1
        p = indptr[j] + 1
        first[j] = p
        if p < indptr[j + 1]:
            r = rows[p]
            nxt[j] = head[r]
            head[r] = j
    return lv, True


@numba.njit(cache=True, nogil=True)
def _apply(indptr, rows, lv, r):
    """``(L Lᵀ)⁻¹ r`` by a forward and a backward triangular solve."""
    n = len(r)
    y = r.copy()
    for j in range(n):
        y[j] /= lv[indptr[j]]
        yj = y[j]
        for p in range(indptr[j] + 1, indptr[j + 1]):
            y[rows[p]] -= lv[p] * yj
    for j in range(n - 1, -1, -1):
        s = y[j]
        for p in range(indptr[j] + 1, indptr[j + 1]):
            s -= lv[p] * y[rows[p]]
        y[j] = s / lv[indptr[j]]
    return y


def ichol(a: sp.spmatrix, shifts=(0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)):
    """``(indptr, rows, values)`` of the IC(0) factor ``L`` (CSC) of symmetric ``a``."""
    low = sp.tril(sp.csc_matrix(a), format="csc")
    low.sort_indices()
    low.sum_duplicates()
    n = low.shape[0]
    diag = low.diagonal()
    if np.any(diag <= 0):
        raise ValueError("incomplete Cholesky needs a positive diagonal")
    indptr, rows = low.indptr.astype(np.int64), low.indices.astype(np.int64)
    base = low.data.astype(np.float64)
    is_diag = rows == np.repeat(np.arange(n), np.diff(indptr))
    for s in shifts:
        vals = base + s * np.where(is_diag, base, 0.0)
        lv, ok = _ic0(indptr, rows, vals, n)
        if ok:
            return indptr, rows, lv
    raise ValueError("incomplete Cholesky failed for every diagonal shift")


def ichol_cg(a: sp.spmatrix, b: np.ndarray, *, tol: float = 1e-8, maxiter: int = 10000,
             x0: np.ndarray | None = None) -> np.ndarray:
    """Solve symmetric positive-definite ``a x = b`` by IC(0)-preconditioned CG to a
    relative residual ``tol``."""
    a = sp.csr_matrix(a)
    indptr, rows, lv = ichol(a)
    x = np.zeros_like(b, dtype=np.float64) if x0 is None else np.asarray(x0, np.float64).copy()
    r = b - a @ x
    bnorm = np.linalg.norm(b) or 1.0
    if np.linalg.norm(r) <= tol * bnorm:
        return x
    z = _apply(indptr, rows, lv, r)
    p = z.copy()
    rz = r @ z
    for _ in range(maxiter):
        ap = a @ p
        step = rz / (p @ ap)
        x += step * p
        r -= step * ap
        if np.linalg.norm(r) <= tol * bnorm:
            break
        z = _apply(indptr, rows, lv, r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x
