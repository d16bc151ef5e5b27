"""The ``flow`` video backend: no weights, the offline default.

Each object's mask is carried from frame to frame by dense optical flow — OpenCV's DIS
(Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016) or Farnebäck —
computed backwards (new frame → previous frame), so every pixel of the new frame looks up
where it came from and the warped mask has no holes. The warped mask is then refined on a
crop around the object by GrabCut (Rother et al. 2004): its interior (eroded) is sure
foreground, a band around its edge is left to the colour models, and everything further
away is sure background. Work runs at most at ``max_side`` pixels on the long side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class FlowOptions:
    flow: str = "dis"  # dis | farneback
    refine: str = "grabcut"  # grabcut | none
    max_side: int = 480  # work size (long side) for the flow
    band: float = 0.08  # uncertain band around the warped edge, fraction of the object size
    iterations: int = 2  # GrabCut iterations per frame


class FlowTracker:
    """Warps masks from one frame to the next (``step``) and refines them."""

    def __init__(self, **options):
        self.opt = FlowOptions(**options)
        if self.opt.flow not in ("dis", "farneback"):
            raise ValueError(f"flow must be 'dis' or 'farneback', got {self.opt.flow!r}")
        if self.opt.refine not in ("grabcut", "none"):
            raise ValueError(f"refine must be 'grabcut' or 'none', got {self.opt.refine!r}")
        self._dis = None

    def flow(self, image: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """``(H, W, 2)`` float32 flow from ``image`` to ``previous`` (pixels at full size)."""
        h, w = image.shape[:2]
        f = min(1.0, self.opt.max_side / max(h, w))
        a, b = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (image, previous))
        if f < 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        if self.opt.flow == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            fl = self._dis.calc(a, b, None)
        else:
            fl = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
        if f < 1.0:
            fl = cv2.resize(fl, (w, h), interpolation=cv2.INTER_LINEAR) / f
        return fl

    def warp(self, mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
        """The previous frame's ``(H, W)`` bool mask carried onto the new frame."""
        h, w = mask.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        soft = cv2.remap(mask.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return soft >= 0.5

    def refine(self, image: np.ndarray, warped: np.ndarray) -> np.ndarray:
        """GrabCut on a crop around ``warped``: eroded interior sure foreground, far
        surroundings sure background, the band between decided by colour."""
        if self.opt.refine == "none" or not warped.any():
            return warped
        ys, xs = np.nonzero(warped)
        size = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
        band = max(2, round(self.opt.band * size))
        h, w = warped.shape
        y0, y1 = max(0, ys.min() - 3 * band), min(h, ys.max() + 3 * band + 1)
        x0, x1 = max(0, xs.min() - 3 * band), min(w, xs.max() + 3 * band + 1)
        crop = warped[y0:y1, x0:x1].astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        inner = cv2.erode(crop, kernel)
        outer = cv2.dilate(crop, kernel)
        gc = np.full(crop.shape, cv2.GC_BGD, np.uint8)
        gc[outer > 0] = cv2.GC_PR_BGD
        gc[crop > 0] = cv2.GC_PR_FGD
        gc[inner > 0] = cv2.GC_FGD
        if not (gc == cv2.GC_BGD).any() or not inner.any():
            return warped  # no sure background or foreground to learn colours from
        bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
        img = np.ascontiguousarray(image[y0:y1, x0:x1, ::-1])
        cv2.grabCut(img, gc, None, bgd, fgd, self.opt.iterations, cv2.GC_INIT_WITH_MASK)
        out = np.zeros_like(warped)
        out[y0:y1, x0:x1] = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        return out

    def step(self, previous: np.ndarray, image: np.ndarray,
             masks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Each object's mask on ``image`` from its mask on ``previous``."""
        if not masks:
            return {}
        fl = self.flow(image, previous)
        return {k: self.refine(image, self.warp(m, fl)) for k, m in masks.items()}
