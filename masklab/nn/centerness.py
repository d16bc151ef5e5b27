"""FCOS centerness (Tian et al., ICCV 2019): how central a location is inside its box.

``centerness = sqrt(min(l, r) / max(l, r) · min(t, b) / max(t, b))`` with ``l, t, r, b``
the distances from the location to the box's left, top, right and bottom sides: 1 at the
centre, falling to 0 at the border. FCOS multiplies class scores by it to down-weight
low-quality boxes predicted far from object centres.
"""

from __future__ import annotations

import numpy as np


def ltrb(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distances ``(l, t, r, b)`` from ``(N, 2)`` points to their ``(N, 4)`` xyxy boxes."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([p[:, 0] - b[:, 0], p[:, 1] - b[:, 1], b[:, 2] - p[:, 0],
                     b[:, 3] - p[:, 1]], axis=1)


def centerness(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Centerness of each point in its box; 0 for points outside (any distance <= 0)."""
    d = ltrb(points, boxes)
    lr, tb = d[:, [0, 2]], d[:, [1, 3]]
    inside = (d > 0).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.sqrt((lr.min(1) / lr.max(1)) * (tb.min(1) / tb.max(1)))
    return np.where(inside, c, 0.0)
