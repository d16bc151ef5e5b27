"""Unsupervised video object segmentation: find the objects that move, with no prompt.

On a frame, the backward dense flow to the next frame is compared with the camera's motion —
an affine model fitted to the flow with RANSAC (OpenCV ``estimateAffine2D``) — and pixels
whose residual motion (smoothed) is above ``max(1 px, 8 × its median, Otsu's threshold)``
move against the background. SLIC superpixels (Achanta et al., TPAMI 2012) are the proposals: one
that is mostly moving joins the foreground, so object boundaries follow image edges; each
connected group of them of at least ``min_area`` of the frame is an object, tightened to
its part whose colours are likelier inside it than around it (moving regions spill over
what the object uncovers).
``VideoSession.discover`` tracks them and looks again every ``every`` frames for moving
objects that no track covers.
"""

from __future__ import annotations

import cv2
import numpy as np


def moving_regions(image: np.ndarray, following: np.ndarray, flow_fn, *,
                   min_area: float = 0.002, max_objects: int = 20,
                   n_segments: int = 400) -> list[np.ndarray]:
    """Masks of the regions of ``image`` that move against the camera, largest first.
    ``flow_fn(a, b)`` gives the ``(H, W, 2)`` flow from ``a`` to ``b``."""
    from skimage.segmentation import slic

    h, w = image.shape[:2]
    flow = flow_fn(image, following)
    step = max(4, round(max(h, w) / 80))
    ys, xs = np.mgrid[step // 2:h:step, step // 2:w:step]
    src = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    dst = src + flow[ys.ravel(), xs.ravel()]
    model, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if model is None:
        model = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    cam_x = model[0, 0] * gx + model[0, 1] * gy + model[0, 2] - gx
    cam_y = model[1, 0] * gx + model[1, 1] * gy + model[1, 2] - gy
    residual = np.hypot(flow[..., 0] - cam_x, flow[..., 1] - cam_y)
    residual = cv2.GaussianBlur(residual, (0, 0), 2)
    from skimage.filters import threshold_otsu

    cut = max(1.0, 8 * float(np.median(residual)), float(threshold_otsu(residual)))
    moving = residual > cut
    segments = slic(image, n_segments=n_segments, compactness=10, start_label=0)
    share = np.bincount(segments.ravel(), weights=moving.ravel(),
                        minlength=segments.max() + 1) / np.maximum(
        np.bincount(segments.ravel()), 1)
    fg = (share > 0.5)[segments]
    # parts of one object (a rider and a horse's legs) join across small gaps
    gap = max(3, 2 * round(0.015 * max(h, w)) + 1)
    joined = cv2.dilate(fg.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (gap, gap)))
    n, regions, stats, _ = cv2.connectedComponentsWithStats(joined)
    regions = np.where(fg, regions, 0)
    stats[:, cv2.CC_STAT_AREA] = np.bincount(regions.ravel(), minlength=n)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA]) + 1
    keep = [k for k in order if stats[k, cv2.CC_STAT_AREA] >= min_area * h * w]
    return [m for m in (_tighten(image, regions == k) for k in keep[:max_objects])
            if m.sum() >= min_area * h * w]


def _tighten(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Moving regions spill over what the object uncovers: keep the part whose colours are
    likelier inside the region than in a band around it (its largest connected piece)."""
    from masklab.video.flow import FlowTracker

    inside = region & (FlowTracker().appearance(image, region).log_ratio(image) > 0)
    n, parts, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8))
    if n < 2:
        return region
    return parts == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
