"""The "least confident first" queue, made diverse.

Ordering images by uncertainty alone labels the same hard scene again and again: the
frames of one video that the model finds difficult look alike, and labelling ten of them
teaches it little more than labelling one. The pre-labelling job therefore describes each
image by the layout of what the model sees (its class probabilities pooled on a coarse
grid: where which class is), groups the images into clusters of look-alikes (k-means,
k = sqrt(n)) and takes them round robin: the most uncertain image of each cluster first
(most uncertain cluster first), then the second of each, and so on ("cluster margin"
selection, Citovsky et al., 2021, with entropy for the margin).

Each image's ``priority`` (the queue's sort key, descending) stays on the scale of its
uncertainty: the running minimum of the uncertainties along that order, less a vanishing
amount per place so that the order is strict.
"""

from __future__ import annotations

import numpy as np

GRID = 4  # the layout features: class probabilities pooled on GRID x GRID cells
MAX_CLUSTERS = 64


def pool_layout(maps: np.ndarray, grid: int = GRID) -> np.ndarray:
    """(K, H, W) class maps (probabilities, or score-weighted masks) -> (K * grid * grid,)
    float32: each class's mean over each cell of a grid x grid partition, L2-normalised."""
    k, h, w = maps.shape
    ys = np.linspace(0, h, grid + 1).astype(int)
    xs = np.linspace(0, w, grid + 1).astype(int)
    out = np.zeros((k, grid, grid), np.float32)
    for i in range(grid):
        for j in range(grid):
            cell = maps[:, ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)]
            out[:, i, j] = cell.reshape(k, -1).mean(1)
    v = out.ravel()
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 25) -> np.ndarray:
    """Cluster labels (n,) of the rows of ``x`` (n, d): k-means++ seeding, Lloyd steps."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(n)]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            break
        centres.append(x[rng.choice(n, p=d2 / total)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.zeros(n, np.int64)
    for it in range(iters):
        dist = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]
        new = dist.argmin(1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(len(c)):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(0)
    return labels


def diverse_order(uncertainty, features, *, clusters: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """Indices of the images, the one to label first first: round robin over clusters of
    look-alike ``features`` (n, d), each cluster's images by decreasing ``uncertainty``
    (n,), each round by decreasing uncertainty. ``clusters``: default ``round(sqrt(n))``."""
    u = np.asarray(uncertainty, np.float64)
    n = len(u)
    if n == 0:
        return np.zeros(0, np.int64)
    f = np.asarray(features, np.float64).reshape(n, -1)
    k = clusters or int(min(MAX_CLUSTERS, max(1, round(np.sqrt(n)))))
    labels = kmeans(f, k, seed=seed)
    members = [sorted(np.flatnonzero(labels == j), key=lambda i: (-u[i], i))
               for j in np.unique(labels)]
    order = []
    for r in range(max(len(m) for m in members)):
        batch = [m[r] for m in members if r < len(m)]
        order += sorted(batch, key=lambda i: (-u[i], i))
    return np.asarray(order, np.int64)


def priorities(uncertainty, order) -> np.ndarray:
    """Sort keys (n,), descending along ``order``: the running minimum of the uncertainties
    in that order, less 1e-9 per place (strict, and on the uncertainties' scale)."""
    u = np.asarray(uncertainty, np.float64)
    out = np.empty(len(u))
    low = np.inf
    for place, i in enumerate(order):
        low = min(low, u[i])
        out[i] = low - 1e-9 * place
    return out
