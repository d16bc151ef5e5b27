"""Semantic segmentation: a confusion matrix, and every figure derived from it.

Per class IoU and Dice/F1, mIoU, mDice, pixel accuracy, mean class accuracy and
frequency-weighted IoU, as MMSegmentation defines them: pixels whose ground truth is the
ignore index (or out of range) are skipped; a class absent from both ground truth and
prediction has NaN IoU and is left out of the means. ``reduce_zero_label`` is ADE20K's rule:
ground-truth 0 becomes ignored and every other id moves down by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numba
import numpy as np


@numba.njit(cache=True, parallel=True, nogil=True)
def _hist(gt, pred, num_classes, ignore_index, reduce_zero_label, chunks):
    """``(C, C + 1)`` counts of (ground truth, prediction); column C is out-of-range."""
    n = gt.shape[0]
    C = num_classes
    out = np.zeros((chunks, C, C + 1), np.int64)
    step = (n + chunks - 1) // chunks
    for c in numba.prange(chunks):
        lo = c * step
        hi = min(n, lo + step)
        h = out[c]
        for i in range(lo, hi):
            g = np.int64(gt[i])
            if g == ignore_index:
                continue
            if reduce_zero_label:
                if g == 0:
                    continue
                g -= 1
            if g < 0 or g >= C:
                continue
            p = np.int64(pred[i])
            if p < 0 or p >= C:
                p = C
            h[g, p] += 1
    return out.sum(axis=0)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int, *,
                     ignore_index: int | None = 255, reduce_zero_label: bool = False
                     ) -> np.ndarray:
    """``(C, C + 1)`` int64 matrix, rows ground truth, columns prediction (last: invalid)."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    if not (np.issubdtype(gt.dtype, np.integer) and np.issubdtype(pred.dtype, np.integer)):
        raise ValueError("label maps must be integer arrays")
    g = np.ascontiguousarray(gt).reshape(-1)
    p = np.ascontiguousarray(pred).reshape(-1)
    chunks = max(1, min(numba.get_num_threads() * 4, g.size // 65536))
    ignore = -(2**62) if ignore_index is None else int(ignore_index)
    return _hist(g, p, int(num_classes), ignore, bool(reduce_zero_label), chunks)


@dataclass
class SemanticResult:
    """Per-class and mean figures; per-class arrays hold NaN for classes never seen."""

    iou: np.ndarray
    dice: np.ndarray
    acc: np.ndarray  # per-class accuracy (recall)
    precision: np.ndarray
    miou: float
    mdice: float
    pixel_acc: float
    mean_acc: float
    fwiou: float
    confusion: np.ndarray  # (C, C): the in-range part
    class_names: list[str] | None = None

    def to_dict(self) -> dict:
        names = self.class_names or [str(i) for i in range(len(self.iou))]

        def f(v):
            return None if np.isnan(v) else float(v)

        return {"mIoU": f(self.miou), "mDice": f(self.mdice), "pixel_acc": f(self.pixel_acc),
                "mean_acc": f(self.mean_acc), "fwIoU": f(self.fwiou),
                "per_class": {n: {"IoU": f(i), "Dice": f(d), "Acc": f(a)}
                              for n, i, d, a in zip(names, self.iou, self.dice, self.acc,
                                                    strict=True)}}


def metrics_from_confusion(cm: np.ndarray, class_names: Sequence[str] | None = None
                           ) -> SemanticResult:
    """Figures from a ``(C, C + 1)`` (or ``(C, C)``) confusion matrix."""
    cm = np.asarray(cm, np.int64)
    C = cm.shape[0]
    tp = np.diag(cm[:, :C]).astype(np.float64)
    gt = cm.sum(axis=1).astype(np.float64)
    pred = cm[:, :C].sum(axis=0).astype(np.float64)
    union = gt + pred - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        dice = np.where(gt + pred > 0, 2 * tp / (gt + pred), np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
        precision = np.where(pred > 0, tp / pred, np.nan)
    total = gt.sum()
    seen = ~np.isnan(iou)

    def nanmean(v):
        return float(np.nanmean(v)) if (~np.isnan(v)).any() else float("nan")

    fw = float(np.sum(gt[seen] / total * iou[seen])) if total > 0 else float("nan")
    return SemanticResult(iou, dice, acc, precision, nanmean(iou), nanmean(dice),
                          float(tp.sum() / total) if total > 0 else float("nan"),
                          nanmean(acc), fw, cm[:, :C].copy(),
                          None if class_names is None else list(class_names))


class SemanticEvaluator:
    """Mergeable: ``update(gt, pred)`` per image, ``merge`` another, ``compute``."""

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255,
                 reduce_zero_label: bool = False, class_names: Sequence[str] | None = None):
        if num_classes < 1:
            raise ValueError("num_classes must be positive")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.class_names = None if class_names is None else list(class_names)
        self.confusion = np.zeros((num_classes, num_classes + 1), np.int64)
        self.images = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> SemanticEvaluator:
        self.confusion += confusion_matrix(gt, pred, self.num_classes,
                                           ignore_index=self.ignore_index,
                                           reduce_zero_label=self.reduce_zero_label)
        self.images += 1
        return self

    def merge(self, other: SemanticEvaluator) -> SemanticEvaluator:
        if (other.num_classes, other.ignore_index, other.reduce_zero_label) != \
                (self.num_classes, self.ignore_index, self.reduce_zero_label):
            raise ValueError("cannot merge evaluators with different settings")
        self.confusion += other.confusion
        self.images += other.images
        return self

    def compute(self) -> SemanticResult:
        return metrics_from_confusion(self.confusion, self.class_names)


def semantic_evaluate(pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int,
                      **kwargs) -> SemanticResult:
    """One call over ``(gt, pred)`` label-map pairs."""
    ev = SemanticEvaluator(num_classes, **kwargs)
    for gt, pred in pairs:
        ev.update(gt, pred)
    return ev.compute()


def _semantic_shard(units: list, num_classes: int, kwargs: dict, quiet) -> SemanticEvaluator:
    from masklab.errors import InputError
    from masklab.io.images import read_label_png
    from masklab.progress import progress

    ev = SemanticEvaluator(num_classes, **kwargs)
    for gp, pp in progress(units, desc="mIoU", quiet=quiet):
        gt, pred = read_label_png(gp), read_label_png(pp)
        if gt.shape != pred.shape:
            raise InputError(f"prediction is {pred.shape[1]}x{pred.shape[0]}, ground truth "
                             f"{gt.shape[1]}x{gt.shape[0]}", pp)
        ev.update(gt, pred)
    return ev


def semantic_evaluate_dirs(gt_dir, pred_dir, num_classes: int, *, quiet: bool | None = None,
                           runner=None, **kwargs) -> SemanticResult:
    """Evaluate prediction label PNGs against ground-truth PNGs paired by file stem
    (``runner``: where shards of images are evaluated, see ``masklab.metrics._shards``)."""
    from pathlib import Path

    from masklab.errors import InputError
    from masklab.metrics._shards import merged

    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for d in (gt_dir, pred_dir):
        if not d.is_dir():
            raise InputError("no such folder", d)
    gts = {p.stem: p for p in sorted(gt_dir.glob("*.png"))}
    if not gts:
        raise InputError("no PNG label maps", gt_dir)
    units = []
    for stem, gp in gts.items():
        pp = pred_dir / f"{stem}.png"
        if not pp.is_file():
            raise InputError(f"no prediction {stem}.png for ground truth {gp.name}", pred_dir)
        units.append((str(gp), str(pp)))
    SemanticEvaluator(num_classes, **kwargs)  # bad settings fail here, before any work
    return merged(_semantic_shard, units, num_classes, kwargs, quiet, runner=runner)
