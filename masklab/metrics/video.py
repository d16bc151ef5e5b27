"""Video object segmentation (DAVIS 2017): region similarity J and contour accuracy F.

Identical to the official davis2017-evaluation: J is the IoU (1 when both masks are empty);
F is the F-measure of boundary pixels matched within a disk of radius
``ceil(0.008 · image diagonal)`` (Perazzi et al., CVPR 2016). Per object: mean, recall
(fraction of frames above 0.5) and decay (mean of the first quarter of frames minus the
last). Semi-supervised evaluation skips each sequence's first and last frames; unsupervised
evaluation matches up to 20 proposals to objects with the Hungarian algorithm on (J + F) / 2
and counts void pixels out.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masklab.errors import InputError

BOUND_TH = 0.008


def region_similarity(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None
                      ) -> np.ndarray:
    """J per frame for ``(T, H, W)`` (or one ``(H, W)``) masks."""
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    inter = np.sum(gt & pred & keep, axis=(-2, -1))
    union = np.sum((gt | pred) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    return np.where(np.isclose(union, 0), 1.0, j)


def _boundary(seg: np.ndarray) -> np.ndarray:
    """Pixels whose right, lower or lower-right neighbour differs (DAVIS' ``seg2bmap``)."""
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _disk(radius: float) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
               bound_th: float = BOUND_TH) -> float:
    """F for one frame: boundary precision and recall within the tolerance disk."""
    import cv2

    keep = None if void is None else ~void.astype(bool)
    fg = pred.astype(bool) if keep is None else pred.astype(bool) & keep
    gtm = gt.astype(bool) if keep is None else gt.astype(bool) & keep
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_b, gt_b = _boundary(fg), _boundary(gtm)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt > 0:
        return 0.0  # precision 1, recall 0
    if n_fg > 0 and n_gt == 0:
        return 0.0
    if n_fg == 0 and n_gt == 0:
        return 1.0
    kernel = _disk(bound_pix)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    precision = np.sum(fg_b & gt_dil) / float(n_fg)
    recall = np.sum(gt_b & fg_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def contour_accuracy(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None
                     ) -> np.ndarray:
    """F per frame for ``(T, H, W)`` masks."""
    return np.array([boundary_f(gt[t], pred[t], None if void is None else void[t])
                     for t in range(gt.shape[0])])


def statistics(per_frame: np.ndarray) -> tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values, as ``db_statistics``."""
    v = np.asarray(per_frame, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins, as the reference
        mean = np.nanmean(v)
        recall = np.nanmean(v > 0.5)
        # the reference stores the bin edges as uint8; so do we, to agree past 255 frames
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [v[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)


def split_objects(ids: np.ndarray, num_objects: int | None = None) -> np.ndarray:
    """``(T, H, W)`` id maps → ``(N, T, H, W)`` bool masks for ids 1..N (N from the max)."""
    n = int(ids.max(initial=0)) if num_objects is None else num_objects
    return ids[None] == np.arange(1, n + 1)[:, None, None, None]


@dataclass
class DavisResult:
    """Global figures (keys as the official tool's CSV) and per-object J and F means."""

    global_: dict[str, float]
    j_per_object: dict[str, float]
    f_per_object: dict[str, float]
    per_frame: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**self.global_, "J_per_object": self.j_per_object,
                "F_per_object": self.f_per_object}


class DavisEvaluator:
    """Mergeable J&F: ``update`` per sequence with ground-truth and result id maps."""

    def __init__(self, task: str = "semi-supervised", max_proposals: int = 20):
        if task not in ("semi-supervised", "unsupervised"):
            raise ValueError(f"task must be semi-supervised or unsupervised, got {task!r}")
        self.task = task
        self.max_proposals = max_proposals
        self.objects: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, name: str, gt_ids: np.ndarray, res_ids: np.ndarray) -> DavisEvaluator:
        """``gt_ids``: ``(T, H, W)`` annotation ids (255 void); ``res_ids``: the results for
        the frames evaluated (semi-supervised: frames 1..T-2; unsupervised: all)."""
        gt_ids = np.asarray(gt_ids)
        void = gt_ids == 255
        gt_clean = np.where(void, 0, gt_ids)
        gt = split_objects(gt_clean, int(gt_clean[0].max(initial=0)))
        if self.task == "semi-supervised":
            gt, void = gt[:, 1:-1], None
        res = split_objects(np.asarray(res_ids))
        if res.shape[1:] != gt.shape[1:]:
            raise InputError(f"sequence {name}: results have {res.shape[1]} frames of "
                             f"{res.shape[2:]}, expected {gt.shape[1]} of {gt.shape[2:]}")
        if self.task == "semi-supervised":
            if len(res) > len(gt):
                raise InputError(f"sequence {name}: results have {len(res)} objects, the "
                                 f"ground truth {len(gt)}")
            res = _pad(res, len(gt))
            j = np.stack([region_similarity(gt[i], res[i]) for i in range(len(gt))])
            f = np.stack([contour_accuracy(gt[i], res[i]) for i in range(len(gt))])
        else:
            if len(res) > self.max_proposals:
                raise InputError(f"sequence {name}: {len(res)} proposals, more than "
                                 f"{self.max_proposals}")
            res = _pad(res, len(gt))
            jj = np.array([[region_similarity(gt[i], res[k], void) for i in range(len(gt))]
                           for k in range(len(res))])
            ff = np.array([[contour_accuracy(gt[i], res[k], void) for i in range(len(gt))]
                           for k in range(len(res))])
            from scipy.optimize import linear_sum_assignment

            rows, cols = linear_sum_assignment(-(jj.mean(axis=2) + ff.mean(axis=2)) / 2)
            j, f = jj[rows, cols], ff[rows, cols]
        for i in range(len(j)):
            self.objects[f"{name}_{i + 1}"] = (j[i], f[i])
        return self

    def merge(self, other: DavisEvaluator) -> DavisEvaluator:
        if other.task != self.task:
            raise ValueError("cannot merge evaluators of different tasks")
        self.objects.update(other.objects)
        return self

    def compute(self) -> DavisResult:
        if not self.objects:
            raise ValueError("no sequences evaluated")
        js = {k: statistics(v[0]) for k, v in self.objects.items()}
        fs = {k: statistics(v[1]) for k, v in self.objects.items()}
        J = np.array(list(js.values()))
        F = np.array(list(fs.values()))
        g = {"J&F-Mean": float((J[:, 0].mean() + F[:, 0].mean()) / 2),
             "J-Mean": float(J[:, 0].mean()), "J-Recall": float(J[:, 1].mean()),
             "J-Decay": float(J[:, 2].mean()), "F-Mean": float(F[:, 0].mean()),
             "F-Recall": float(F[:, 1].mean()), "F-Decay": float(F[:, 2].mean())}
        return DavisResult(g, {k: v[0] for k, v in js.items()}, {k: v[0] for k, v in fs.items()},
                           dict(self.objects))


def _pad(res: np.ndarray, n: int) -> np.ndarray:
    if len(res) >= n:
        return res
    return np.concatenate([res, np.zeros((n - len(res), *res.shape[1:]), bool)])


def davis_evaluate(davis_root: str | os.PathLike, results_dir: str | os.PathLike, *,
                   task: str = "semi-supervised", subset: str = "val",
                   resolution: str = "480p", year: str = "2017", quiet: bool | None = None
                   ) -> DavisResult:
    """Evaluate a results folder (``<seq>/<frame>.png`` id maps) against a DAVIS root."""
    from masklab.io.davis import annotations_dir, read_sequence
    from masklab.io.images import read_label_png
    from masklab.progress import progress

    root, results = Path(davis_root), Path(results_dir)
    listing = root / "ImageSets" / year / f"{subset}.txt"
    if listing.is_file():
        seqs = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    else:
        from masklab.io.davis import list_sequences

        seqs = list_sequences(root, resolution)
    ev = DavisEvaluator(task)
    for seq in progress(seqs, desc="J&F", quiet=quiet):
        names, gt_ids = read_sequence(annotations_dir(root, resolution) / seq)
        wanted = names[1:-1] if task == "semi-supervised" else names
        frames = []
        for n in wanted:
            f = results / seq / f"{n}.png"
            if not f.is_file():
                raise InputError(f"result frame {seq}/{n}.png is missing", results)
            frames.append(read_label_png(f))
        ev.update(seq, gt_ids, np.stack(frames) if frames else np.zeros((0, *gt_ids.shape[1:])))
    return ev.compute()

