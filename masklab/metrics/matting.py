"""Alpha matting errors of Rhemann et al. (CVPR 2009, alphamatting.com): SAD, MSE, gradient
and connectivity, computed as the Deep Image Matting evaluation code (and MMEditing's port).

Alphas are floats in [0, 1]. By default errors are taken over the trimap's unknown region
(value 128); ``region="all"`` uses every pixel. SAD, gradient and connectivity are reported
divided by 1000, as in the literature; MSE is the mean over the region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _region(trimap: np.ndarray | None, shape, region: str) -> np.ndarray:
    if region == "all" or trimap is None:
        if region == "unknown" and trimap is None:
            raise ValueError("region='unknown' needs a trimap")
        return np.ones(shape, bool)
    if region != "unknown":
        raise ValueError(f"region must be 'unknown' or 'all', got {region!r}")
    t = np.asarray(trimap)
    if t.shape != tuple(shape):
        raise ValueError(f"trimap {t.shape} and alpha {tuple(shape)} differ in shape")
    return t == 128


def _check(pred, gt):
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
    return pred, gt


def sad(pred, gt, trimap=None, region: str = "unknown") -> float:
    """Sum of absolute differences / 1000."""
    pred, gt = _check(pred, gt)
    m = _region(trimap, gt.shape, region)
    return float(np.abs(pred - gt)[m].sum() / 1000)


def mse(pred, gt, trimap=None, region: str = "unknown") -> float:
    """Mean squared error over the region."""
    pred, gt = _check(pred, gt)
    m = _region(trimap, gt.shape, region)
    n = m.sum()
    return float(((pred - gt) ** 2)[m].sum() / n) if n else 0.0


def _gauss_filter(sigma: float, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    half = np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon)))
    r = np.arange(int(2 * half + 1)) - half
    g = np.exp(-r ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -r * g / sigma ** 2
    fx = g[:, None] * dg[None, :]
    fx = fx / np.sqrt((fx ** 2).sum())
    return fx, fx.T


def _gauss_gradient(img: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    fx, fy = _gauss_filter(sigma)
    gx = cv2.filter2D(img, -1, fx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(img, -1, fy, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx ** 2 + gy ** 2)


def _minmax(a: np.ndarray) -> np.ndarray:
    lo, hi = a.min(initial=0), a.max(initial=0)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def gradient_error(pred, gt, trimap=None, region: str = "unknown", sigma: float = 1.4
                   ) -> float:
    """Squared difference of Gaussian-derivative gradient magnitudes / 1000 (both alphas
    min-max normalised first, as ``mat2gray`` in the reference)."""
    pred, gt = _check(pred, gt)
    m = _region(trimap, gt.shape, region)
    diff = (_gauss_gradient(_minmax(gt), sigma) - _gauss_gradient(_minmax(pred), sigma)) ** 2
    return float(diff[m].sum() / 1000)


def connectivity_error(pred, gt, trimap=None, region: str = "unknown", step: float = 0.1
                       ) -> float:
    """Connectivity error / 1000: degradation of each pixel's connection to the largest
    fully-opaque component, over thresholds ``0, step, ..., 1``."""
    import cv2

    pred, gt = _check(pred, gt)
    m = _region(trimap, gt.shape, region)
    steps = np.arange(0, 1 + step, step)
    round_down = -np.ones_like(gt)
    for i in range(1, len(steps)):
        inter = ((gt >= steps[i]) & (pred >= steps[i])).astype(np.uint8)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(inter, connectivity=4)
        sizes = stats[1:, -1]
        omega = np.zeros_like(gt)
        if len(sizes):
            omega[labels == np.argmax(sizes) + 1] = 1
        fresh = (round_down == -1) & (omega == 0)
        round_down[fresh] = steps[i - 1]
    round_down[round_down == -1] = 1
    gd, pd = gt - round_down, pred - round_down
    gt_phi = 1 - gd * (gd >= 0.15)
    pred_phi = 1 - pd * (pd >= 0.15)
    return float(np.abs(gt_phi - pred_phi)[m].sum() / 1000)


@dataclass
class MattingResult:
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float]:
        keys = ("SAD", "MSE", "Grad", "Conn")
        rows = list(self.per_image.values())
        return {k: float(np.mean([r[k] for r in rows])) if rows else float("nan")
                for k in keys}

    def to_dict(self) -> dict:
        return {"mean": self.mean, "per_image": self.per_image}


class MattingEvaluator:
    """Mergeable: ``update(name, pred, gt, trimap)`` per image, ``compute`` the means."""

    def __init__(self, region: str = "unknown"):
        self.region = region
        self.result = MattingResult()

    def update(self, name: str, pred, gt, trimap=None) -> dict[str, float]:
        row = {"SAD": sad(pred, gt, trimap, self.region), "MSE": mse(pred, gt, trimap,
                                                                     self.region),
               "Grad": gradient_error(pred, gt, trimap, self.region),
               "Conn": connectivity_error(pred, gt, trimap, self.region)}
        self.result.per_image[name] = row
        return row

    def merge(self, other: MattingEvaluator) -> MattingEvaluator:
        self.result.per_image.update(other.result.per_image)
        return self

    def compute(self) -> MattingResult:
        return self.result


def _find(folder, stem: str):
    from masklab.errors import InputError

    for ext in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"):
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    raise InputError(f"no image named {stem}.* to pair with the ground truth", folder)


def _matting_shard(units: list, region: str, quiet) -> MattingEvaluator:
    from masklab.errors import InputError
    from masklab.io.images import read_image
    from masklab.progress import progress

    ev = MattingEvaluator(region)
    for stem, gp, pp, tp in progress(units, desc="matting", quiet=quiet):
        gt = read_image(gp, "gray").astype(np.float64) / 255
        pred = read_image(pp, "gray").astype(np.float64) / 255
        if pred.shape != gt.shape:
            raise InputError(f"alpha is {pred.shape[1]}x{pred.shape[0]}, ground truth "
                             f"{gt.shape[1]}x{gt.shape[0]}", pp)
        ev.update(stem, pred, gt, None if tp is None else read_image(tp, "gray"))
    return ev


def matting_evaluate_dirs(pred_dir, gt_dir, trimap_dir=None, *, region: str | None = None,
                          quiet: bool | None = None, runner=None) -> MattingResult:
    """Evaluate alpha PNGs paired by file stem; trimaps (0/128/255) restrict the region
    (``runner``: where shards of images are evaluated, see ``masklab.metrics._shards``)."""
    from pathlib import Path

    from masklab.errors import InputError
    from masklab.io.images import IMAGE_EXTENSIONS
    from masklab.metrics._shards import merged

    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    tri_dir = None if trimap_dir is None else Path(trimap_dir)
    for d in (pred_dir, gt_dir, tri_dir):
        if d is not None and not d.is_dir():
            raise InputError("no such folder", d)
    region = region or ("unknown" if tri_dir is not None else "all")
    gts = {p.stem: p for p in sorted(gt_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    if not gts:
        raise InputError("no ground-truth alpha images", gt_dir)
    units = [(stem, str(gp), str(_find(pred_dir, stem)),
              None if tri_dir is None else str(_find(tri_dir, stem)))
             for stem, gp in gts.items()]
    return merged(_matting_shard, units, region, quiet, runner=runner)
