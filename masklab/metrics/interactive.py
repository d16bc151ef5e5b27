"""Interactive segmentation: the standard click simulator, NoC@85/90 and mIoU per click.

The simulator is the protocol of Xu et al. (CVPR 2016) as implemented by RITM (Sofiiuk et
al., 2022) and used by every NoC table since: each next click goes to the interior point
farthest from the boundary (exact Euclidean distance transform, the image border counting as
boundary) of the error regions; it is positive in a false-negative region and negative in a
false-positive one, whichever reaches deeper; an already clicked pixel is never chosen again.
NoC@t is the number of clicks to reach IoU >= t (``max_clicks`` when never reached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Click = tuple[float, float, bool]  # (x, y, positive)
PredictFn = Callable[[list[Click]], np.ndarray]


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray | None = None
               ) -> Click | None:
    """The simulated user's next click for the current prediction (``None`` if perfect)."""
    import cv2

    gt, pred = gt.astype(bool), pred.astype(bool)
    fn = np.pad(gt & ~pred, 1)
    fp = np.pad(~gt & pred, 1)
    fn_dt = cv2.distanceTransform(fn.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    fp_dt = cv2.distanceTransform(fp.astype(np.uint8), cv2.DIST_L2, 0)[1:-1, 1:-1]
    if clicked is not None:
        fn_dt = fn_dt * ~clicked
        fp_dt = fp_dt * ~clicked
    fn_max, fp_max = fn_dt.max(initial=0), fp_dt.max(initial=0)
    if fn_max == 0 and fp_max == 0:
        return None
    positive = bool(fn_max > fp_max)
    dt, top = (fn_dt, fn_max) if positive else (fp_dt, fp_max)
    ys, xs = np.nonzero(dt == top)
    return float(xs[0]), float(ys[0]), positive


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def simulate(predict: PredictFn, gt: np.ndarray, *, max_clicks: int = 20,
             stop_iou: float | None = None) -> tuple[np.ndarray, list[Click]]:
    """Run the simulated user against ``predict`` (clicks → mask); returns IoU after each
    click and the clicks. With ``stop_iou``, stops once it is reached (the curve is then
    padded with the last IoU)."""
    gt = np.asarray(gt).astype(bool)
    pred = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    clicks: list[Click] = []
    ious = []
    for _ in range(max_clicks):
        c = next_click(gt, pred, clicked)
        if c is None:  # already perfect: further clicks change nothing
            ious.append(ious[-1] if ious else 1.0)
            continue
        clicks.append(c)
        clicked[int(c[1]), int(c[0])] = True
        pred = np.asarray(predict(list(clicks))).astype(bool)
        if pred.shape != gt.shape:
            raise ValueError(f"predict returned a {pred.shape} mask for a {gt.shape} image")
        ious.append(iou(gt, pred))
        if stop_iou is not None and ious[-1] >= stop_iou:
            ious += [ious[-1]] * (max_clicks - len(ious))
            break
    return np.array(ious), clicks


def noc(ious: np.ndarray, threshold: float, max_clicks: int = 20) -> int:
    """Clicks needed to reach ``threshold`` (``max_clicks`` if never)."""
    hit = np.flatnonzero(np.asarray(ious) >= threshold)
    return int(hit[0] + 1) if hit.size else max_clicks


@dataclass
class InteractiveResult:
    noc: dict[float, float]  # threshold -> mean NoC
    nof: dict[float, int]  # threshold -> samples never reaching it
    miou_per_click: np.ndarray
    samples: int

    def to_dict(self) -> dict:
        out = {f"NoC@{round(t * 100)}": v for t, v in self.noc.items()}
        out.update({f"NoF@{round(t * 100)}": v for t, v in self.nof.items()})
        out["mIoU_per_click"] = [float(v) for v in self.miou_per_click]
        out["samples"] = self.samples
        return out


class InteractiveEvaluator:
    """Mergeable NoC: ``update`` with one sample's IoU-per-click curve (or run ``evaluate``)."""

    def __init__(self, thresholds: Sequence[float] = (0.85, 0.90), max_clicks: int = 20):
        self.thresholds = tuple(thresholds)
        self.max_clicks = max_clicks
        self.curves: list[np.ndarray] = []

    def update(self, ious: np.ndarray) -> InteractiveEvaluator:
        ious = np.asarray(ious, np.float64)
        if len(ious) != self.max_clicks:
            raise ValueError(f"expected {self.max_clicks} IoUs, got {len(ious)}")
        self.curves.append(ious)
        return self

    def evaluate(self, predict: PredictFn, gt: np.ndarray) -> np.ndarray:
        """Simulate clicks on one object and record its curve."""
        ious, _ = simulate(predict, gt, max_clicks=self.max_clicks)
        self.update(ious)
        return ious

    def merge(self, other: InteractiveEvaluator) -> InteractiveEvaluator:
        if (other.thresholds, other.max_clicks) != (self.thresholds, self.max_clicks):
            raise ValueError("cannot merge evaluators with different settings")
        self.curves += other.curves
        return self

    def compute(self) -> InteractiveResult:
        if not self.curves:
            raise ValueError("no samples evaluated")
        curves = np.stack(self.curves)
        nocs = {t: [noc(c, t, self.max_clicks) for c in curves] for t in self.thresholds}
        return InteractiveResult(
            {t: float(np.mean(v)) for t, v in nocs.items()},
            {t: int(sum(1 for c in curves if not (c >= t).any())) for t in self.thresholds},
            curves.mean(axis=0), len(curves))
