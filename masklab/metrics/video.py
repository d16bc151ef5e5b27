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

import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from masklab.errors import InputError

BOUND_TH = 0.008


@numba.njit(cache=True, nogil=True)
def _frame_stats(gt, res, void, n_gt, n_res):
    """Per frame: joint counts of (gt id, result id) over non-void pixels (gt ids above
    ``n_gt`` count as background) and each id's bounding box (y0, y1, x0, x1; empty: y0 > y1).
    """
    T, H, W = gt.shape
    hist = np.zeros((T, n_gt + 1, n_res + 1), np.int64)
    gbox = np.empty((T, n_gt + 1, 4), np.int64)
    rbox = np.empty((T, n_res + 1, 4), np.int64)
    for t in range(T):
        for k in range(n_gt + 1):
            gbox[t, k, 0], gbox[t, k, 1], gbox[t, k, 2], gbox[t, k, 3] = H, -1, W, -1
        for k in range(n_res + 1):
            rbox[t, k, 0], rbox[t, k, 1], rbox[t, k, 2], rbox[t, k, 3] = H, -1, W, -1
        for y in range(H):
            for x in range(W):
                if void[t, y, x]:
                    continue
                g = np.int64(gt[t, y, x])
                if g > n_gt:
                    g = 0
                r = np.int64(res[t, y, x])
                hist[t, g, r] += 1
                if g > 0:
                    if y < gbox[t, g, 0]:
                        gbox[t, g, 0] = y
                    gbox[t, g, 1] = y  # rows are visited in order
                    if x < gbox[t, g, 2]:
                        gbox[t, g, 2] = x
                    if x > gbox[t, g, 3]:
                        gbox[t, g, 3] = x
                if r > 0:
                    if y < rbox[t, r, 0]:
                        rbox[t, r, 0] = y
                    rbox[t, r, 1] = y
                    if x < rbox[t, r, 2]:
                        rbox[t, r, 2] = x
                    if x > rbox[t, r, 3]:
                        rbox[t, r, 3] = x
    return hist, gbox, rbox


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


def _boundary(seg: np.ndarray, last_row: bool = True, last_col: bool = True) -> np.ndarray:
    """Pixels whose right, lower or lower-right neighbour differs (DAVIS' ``seg2bmap``).

    ``last_row``/``last_col`` say whether the crop ends at the image's last row/column,
    where the reference compares with fewer neighbours; elsewhere the crop's outside is 0.
    """
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    if last_row:
        b[-1, :] = seg[-1, :] ^ e[-1, :]
    if last_col:
        b[:, -1] = seg[:, -1] ^ s[:, -1]
    if last_row and last_col:
        b[-1, -1] = 0
    return b


@functools.lru_cache(maxsize=8)
def _disk(radius: float) -> np.ndarray:
    from skimage.morphology import disk

    return disk(radius).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None,
               bound_th: float = BOUND_TH) -> float:
    """F for one frame: boundary precision and recall within the tolerance disk.

    Work is confined to the bounding box of both masks plus one pixel: outside it there is
    no boundary (``seg2bmap`` looks right and down), so the crop changes no count.
    """
    keep = None if void is None else ~void.astype(bool)
    fg = pred.astype(bool) if keep is None else pred.astype(bool) & keep
    gtm = gt.astype(bool) if keep is None else gt.astype(bool) & keep
    either = fg | gtm
    rows, cols = np.flatnonzero(either.any(axis=1)), np.flatnonzero(either.any(axis=0))
    if rows.size == 0:
        return 1.0  # no boundary in either mask
    box = _crop_box(rows[0], rows[-1], cols[0], cols[-1], fg.shape)
    y0, y1, x0, x1 = box
    return _f_crop(gtm[y0:y1, x0:x1], fg[y0:y1, x0:x1], box, fg.shape, bound_th)


def _crop_box(r0, r1, c0, c1, shape) -> tuple[int, int, int, int]:
    h, w = shape
    return max(int(r0) - 1, 0), min(int(r1) + 2, h), max(int(c0) - 1, 0), min(int(c1) + 2, w)


def _f_crop(gtm: np.ndarray, fg: np.ndarray, box, shape, bound_th: float) -> float:
    import cv2

    h, w = shape
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(shape))
    last_row, last_col = box[1] == h, box[3] == w
    fg_b = _boundary(fg, last_row, last_col)
    gt_b = _boundary(gtm, last_row, last_col)
    n_fg, n_gt = int(np.count_nonzero(fg_b)), int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        return 0.0  # precision 1, recall 0
    if n_fg > 0 and n_gt == 0:
        return 0.0
    if n_fg == 0 and n_gt == 0:
        return 1.0
    kernel = _disk(float(bound_pix))
    fg_dil = cv2.dilate(fg_b.view(np.uint8), kernel).view(bool)
    gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel).view(bool)
    precision = np.count_nonzero(fg_b & gt_dil) / float(n_fg)
    recall = np.count_nonzero(gt_b & fg_dil) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def _object_scores(gt_ids: np.ndarray, res_ids: np.ndarray, void: np.ndarray | None,
                   n_gt: int, n_res: int, pairs) -> dict[tuple[int, int], tuple]:
    """J and F per frame for each (gt object, result object) pair, from id maps directly."""
    v = np.zeros(gt_ids.shape, bool) if void is None else void
    hist, gbox, rbox = _frame_stats(np.ascontiguousarray(gt_ids), np.ascontiguousarray(res_ids),
                                    np.ascontiguousarray(v), n_gt, n_res)
    area_g, area_r = hist.sum(axis=2), hist.sum(axis=1)
    T = gt_ids.shape[0]
    shape = gt_ids.shape[1:]
    out = {}
    for i, k in pairs:
        inter = hist[:, i, k] if k <= n_res else np.zeros(T, np.int64)
        ar = area_r[:, k] if k <= n_res else np.zeros(T, np.int64)
        union = area_g[:, i] + ar - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            j = np.where(np.isclose(union, 0), 1.0, inter / union)
        f = np.empty(T)
        for t in range(T):
            gb = gbox[t, i]
            rb = rbox[t, k] if k <= n_res else np.array([shape[0], -1, shape[1], -1])
            r0, r1 = min(gb[0], rb[0]), max(gb[1], rb[1])
            if r1 < r0:
                f[t] = 1.0  # both empty
                continue
            box = _crop_box(r0, r1, min(gb[2], rb[2]), max(gb[3], rb[3]), shape)
            y0, y1, x0, x1 = box
            keep = ~v[t, y0:y1, x0:x1]
            g = (gt_ids[t, y0:y1, x0:x1] == i) & keep
            p = (res_ids[t, y0:y1, x0:x1] == k) & keep
            f[t] = _f_crop(g, p, box, shape, BOUND_TH)
        out[(i, k)] = (j, f)
    return out


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
        res_ids = np.asarray(res_ids)
        if gt_ids.max(initial=0) > 255 or res_ids.max(initial=0) > 255:
            raise InputError(f"sequence {name}: object ids must be below 256")
        void = gt_ids == 255
        gt_clean = np.where(void, 0, gt_ids).astype(np.uint8)
        n_gt = int(gt_clean[0].max(initial=0))  # objects are those of the first frame
        if self.task == "semi-supervised":
            gt_clean, void = gt_clean[1:-1], None
        if res_ids.shape != gt_clean.shape:
            raise InputError(f"sequence {name}: results have {res_ids.shape[0]} frames of "
                             f"{res_ids.shape[1:]}, expected {gt_clean.shape[0]} of "
                             f"{gt_clean.shape[1:]}")
        res_ids = res_ids.astype(np.uint8)
        n_res = int(res_ids.max(initial=0))
        if self.task == "semi-supervised":
            if n_res > n_gt:
                raise InputError(f"sequence {name}: results have {n_res} objects, the ground "
                                 f"truth {n_gt}")
            scores = _object_scores(gt_clean, res_ids, None, n_gt, n_res,
                                    [(i, i) for i in range(1, n_gt + 1)])
            per_object = [scores[(i, i)] for i in range(1, n_gt + 1)]
        else:
            if n_res > self.max_proposals:
                raise InputError(f"sequence {name}: {n_res} proposals, more than "
                                 f"{self.max_proposals}")
            n_prop = max(n_res, n_gt)  # missing proposals are empty masks
            scores = _object_scores(gt_clean, res_ids, void, n_gt, n_res,
                                    [(i, k) for i in range(1, n_gt + 1)
                                     for k in range(1, n_prop + 1)])
            from scipy.optimize import linear_sum_assignment

            cost = np.array([[(scores[(i, k)][0].mean() + scores[(i, k)][1].mean()) / 2
                              for i in range(1, n_gt + 1)] for k in range(1, n_prop + 1)])
            rows, cols = linear_sum_assignment(-cost)
            per_object = [scores[(c + 1, r + 1)] for r, c in zip(rows, cols, strict=True)]
        for i, (j, f) in enumerate(per_object):
            self.objects[f"{name}_{i + 1}"] = (j, f)
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


def _davis_shard(seqs: list, root: str, results: str, task: str, resolution: str, quiet
                 ) -> DavisEvaluator:
    from masklab.io.davis import annotations_dir, read_sequence
    from masklab.io.images import read_label_png
    from masklab.progress import progress

    root, results = Path(root), Path(results)
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
    return ev


def davis_evaluate(davis_root: str | os.PathLike, results_dir: str | os.PathLike, *,
                   task: str = "semi-supervised", subset: str = "val",
                   resolution: str = "480p", year: str = "2017", quiet: bool | None = None,
                   runner=None) -> DavisResult:
    """Evaluate a results folder (``<seq>/<frame>.png`` id maps) against a DAVIS root
    (``runner``: where shards of sequences are evaluated, see ``masklab.metrics._shards``)."""
    from masklab.metrics._shards import merged

    root, results = Path(davis_root), Path(results_dir)
    listing = root / "ImageSets" / year / f"{subset}.txt"
    if listing.is_file():
        seqs = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    else:
        from masklab.io.davis import list_sequences

        seqs = list_sequences(root, resolution)
    DavisEvaluator(task)  # a bad task fails here, before any work
    return merged(_davis_shard, seqs, str(root), str(results), task, resolution, quiet,
                  runner=runner)
