"""Boundary IoU (Cheng et al., CVPR 2021): IoU of the masks' inner boundary bands.

A mask's band is the pixels within ``d = round(dilation_ratio · image diagonal)`` of its
contour (mask minus its erosion by a 3×3 square ``d`` times, outside the image counting as
background); the metric is the IoU of the two bands.
"""

from __future__ import annotations

import numpy as np

from masklab.types import Masks


def boundary_band(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """The inner boundary band of one ``(H, W)`` mask."""
    import cv2

    m = np.asarray(mask).astype(np.uint8)
    h, w = m.shape
    d = max(1, round(float(dilation_ratio * np.sqrt(h ** 2 + w ** 2))))
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:h + 1, 1:w + 1]
    return (m - eroded).astype(bool)


def boundary_iou(gt: np.ndarray, pred: np.ndarray, dilation_ratio: float = 0.02) -> float:
    """Boundary IoU of two masks (0 when both bands are empty)."""
    a, b = boundary_band(gt, dilation_ratio), boundary_band(pred, dilation_ratio)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def boundary_iou_matrix(dt: Masks, gt: Masks, dilation_ratio: float = 0.02) -> np.ndarray:
    """Pairwise Boundary IoU, ``(len(dt), len(gt))``."""
    bands_d = Masks(np.array([boundary_band(m, dilation_ratio) for m in dt.to_dense()])
                    .reshape(len(dt), *dt.size))
    bands_g = Masks(np.array([boundary_band(m, dilation_ratio) for m in gt.to_dense()])
                    .reshape(len(gt), *gt.size))
    return bands_d.iou(bands_g)
