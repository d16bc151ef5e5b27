"""Panoptic quality (Kirillov et al., CVPR 2019), identical to panopticapi's ``pq_compute``.

A predicted and a ground-truth segment of the same category match when their IoU exceeds
0.5, where the union leaves out the prediction's overlap with unlabelled (VOID) pixels.
Crowd ground truth is never matched; a prediction more than half inside VOID or a crowd
region of its category is not a false positive. PQ = SQ × RQ with
SQ = mean IoU of matches and RQ = TP / (TP + FP/2 + FN/2); means over categories seen.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np

from masklab.errors import InputError

VOID = 0
OFFSET = 256 * 256 * 256


@dataclass
class _Stat:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


@dataclass
class PanopticResult:
    all: dict
    things: dict
    stuff: dict
    per_class: dict[int, dict]

    def to_dict(self) -> dict:
        return {"All": self.all, "Things": self.things, "Stuff": self.stuff,
                "per_class": {str(k): v for k, v in self.per_class.items()}}


@numba.njit(cache=True, nogil=True)
def _lookup(ids, sorted_ids):
    lo, hi = 0, sorted_ids.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if sorted_ids[mid] < ids:
            lo = mid + 1
        else:
            hi = mid
    if lo < sorted_ids.shape[0] and sorted_ids[lo] == ids:
        return lo
    return -1


@numba.njit(cache=True, nogil=True)
def _pair_chunk(gt, pred, gt_ids, pred_ids, lo, hi, out):
    kg = gt_ids.shape[0]
    g_rgb, p_rgb = gt.shape[1] == 3, pred.shape[1] == 3
    lg, lgi, lp, lpi = np.int64(-1), kg, np.int64(-1), 0
    for i in range(lo, hi):
        # ids computed in the loop (panopticapi's rgb2id for RGB rows)
        if g_rgb:
            g = np.int64(gt[i, 0]) + 256 * np.int64(gt[i, 1]) + 65536 * np.int64(gt[i, 2])
        else:
            g = np.int64(gt[i, 0])
        if p_rgb:
            p = np.int64(pred[i, 0]) + 256 * np.int64(pred[i, 1]) + 65536 * np.int64(pred[i, 2])
        else:
            p = np.int64(pred[i, 0])
        if g != lg:
            lgi = _lookup(g, gt_ids)
            if lgi < 0:
                lgi = kg
            lg = g
        if p != lp:
            lpi = _lookup(p, pred_ids)
            if lpi < 0:
                return p
            lp = p
        out[lgi, lpi] += 1
    return np.int64(-1)


@numba.njit(cache=True, parallel=True, nogil=True)
def _pair_matrix(gt, pred, gt_ids, pred_ids):
    """Counts of (gt index, pred index): rows ``gt_ids`` then one for any other gt id;
    columns ``pred_ids``. Returns the matrix and a pred id not in ``pred_ids`` (or -1).
    ``gt``/``pred`` are ``(N, 1)`` ids or ``(N, 3)`` RGB pixels."""
    kg, kp = gt_ids.shape[0], pred_ids.shape[0]
    n = gt.shape[0]
    chunks = 4
    step = (n + chunks - 1) // chunks
    parts = np.zeros((chunks, kg + 1, kp), np.int64)
    bad = np.full(chunks, -1, np.int64)
    for c in numba.prange(chunks):
        bad[c] = _pair_chunk(gt, pred, gt_ids, pred_ids, c * step, min(n, (c + 1) * step),
                             parts[c])
    for c in range(chunks):
        if bad[c] >= 0:
            return parts[0], bad[c]
    return parts.sum(axis=0), np.int64(-1)


def _flat(ids: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(ids)
    if a.ndim == 3 and a.shape[2] == 3:
        return a.reshape(-1, 3)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) id map or (H, W, 3) RGB, got shape {a.shape}")
    return a.reshape(-1, 1)


class PanopticEvaluator:
    """Mergeable PQ: ``update`` per image with id maps and segment lists, then ``compute``."""

    def __init__(self, categories: Sequence[dict]):
        self.categories = {c["id"]: c for c in categories}
        self.stats: dict[int, _Stat] = {c: _Stat() for c in self.categories}

    def update(self, gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray,
               pred_segments: Sequence[dict], image: str = "") -> PanopticEvaluator:
        """``*_ids``: ``(H, W)`` segment-id maps, or the ``(H, W, 3)`` RGB of COCO-panoptic
        PNGs (decoded in the same pass); ``*_segments``: ``segments_info`` lists."""
        if gt_ids.shape[:2] != pred_ids.shape[:2]:
            raise InputError(f"image {image}: ground truth {gt_ids.shape} and prediction "
                             f"{pred_ids.shape} differ in size")
        gt_segms = {s["id"]: dict(s) for s in gt_segments}
        pred_segms = {s["id"]: dict(s) for s in pred_segments}
        g_list = np.array(sorted({VOID, *gt_segms}), np.int64)
        p_list = np.array(sorted({VOID, *pred_segms}), np.int64)
        mat, bad = _pair_matrix(_flat(gt_ids), _flat(pred_ids), g_list, p_list)
        if bad >= 0:
            raise InputError(f"image {image}: segment {bad} is in the PNG but not in the JSON")
        pred_area = mat.sum(axis=0)
        for j, label in enumerate(p_list.tolist()):
            if label == VOID:
                continue
            if pred_area[j] == 0:
                raise InputError(f"image {image}: segment {label} is in the JSON but not in "
                                 "the PNG")
            pred_segms[label]["area"] = int(pred_area[j])
            if pred_segms[label]["category_id"] not in self.categories:
                raise InputError(f"image {image}: segment {label} has unknown category "
                                 f"{pred_segms[label]['category_id']}")
        # pixel counts of every (gt id, pred id) pair that occurs (unknown gt ids dropped)
        rows, cols = np.nonzero(mat[:-1])
        pairs = {(int(g_list[r]), int(p_list[c])): int(mat[r, c])
                 for r, c in zip(rows, cols, strict=True)}
        gt_matched, pred_matched = set(), set()
        for (g, p), inter in pairs.items():
            if g not in gt_segms or p not in pred_segms:
                continue
            gs, ps = gt_segms[g], pred_segms[p]
            if gs.get("iscrowd", 0) == 1 or gs["category_id"] != ps["category_id"]:
                continue
            union = ps["area"] + gs["area"] - inter - pairs.get((VOID, p), 0)
            iou = inter / union
            if iou > 0.5:
                st = self.stats[gs["category_id"]]
                st.tp += 1
                st.iou += iou
                gt_matched.add(g)
                pred_matched.add(p)
        crowd = {}
        for g, gs in gt_segms.items():
            if g in gt_matched:
                continue
            if gs.get("iscrowd", 0) == 1:
                crowd[gs["category_id"]] = g
                continue
            self.stats[gs["category_id"]].fn += 1
        for p, ps in pred_segms.items():
            if p in pred_matched:
                continue
            inter = pairs.get((VOID, p), 0)
            if ps["category_id"] in crowd:
                inter += pairs.get((crowd[ps["category_id"]], p), 0)
            if inter / ps["area"] > 0.5:
                continue
            self.stats[ps["category_id"]].fp += 1
        return self

    def merge(self, other: PanopticEvaluator) -> PanopticEvaluator:
        if other.categories.keys() != self.categories.keys():
            raise ValueError("cannot merge evaluators of different categories")
        for c, st in other.stats.items():
            mine = self.stats[c]
            mine.iou += st.iou
            mine.tp += st.tp
            mine.fp += st.fp
            mine.fn += st.fn
        return self

    def _average(self, isthing: bool | None) -> tuple[dict, dict]:
        pq = sq = rq = 0.0
        n = 0
        per = {}
        for c, info in self.categories.items():
            if isthing is not None and (info.get("isthing", 0) == 1) != isthing:
                continue
            st = self.stats[c]
            if st.tp + st.fp + st.fn == 0:
                per[c] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                continue
            n += 1
            pq_c = st.iou / (st.tp + 0.5 * st.fp + 0.5 * st.fn)
            sq_c = st.iou / st.tp if st.tp != 0 else 0
            rq_c = st.tp / (st.tp + 0.5 * st.fp + 0.5 * st.fn)
            per[c] = {"pq": pq_c, "sq": sq_c, "rq": rq_c}
            pq += pq_c
            sq += sq_c
            rq += rq_c
        if n == 0:
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}, per
        return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per

    def compute(self) -> PanopticResult:
        overall, per = self._average(None)
        things, _ = self._average(True)
        stuff, _ = self._average(False)
        return PanopticResult(overall, things, stuff, per)


@dataclass
class _Side:
    data: dict
    png_dir: os.PathLike
    by_image: dict = field(default_factory=dict)


def _panoptic_shard(image_ids: list, gt_json, gt_dir, pred_json, pred_dir, quiet
                    ) -> PanopticEvaluator:
    from masklab.io.panoptic import load_panoptic
    from masklab.progress import progress

    gt = load_panoptic(gt_json, gt_dir)
    pred = load_panoptic(pred_json, pred_dir, categories=gt.data["categories"])
    ev = PanopticEvaluator(gt.data["categories"])
    for image_id in progress(image_ids, desc="PQ", quiet=quiet):
        ann, pann = gt.annotation_by_image[image_id], pred.annotation_by_image[image_id]
        ev.update(gt.read_rgb(image_id), ann["segments_info"], pred.read_rgb(image_id),
                  pann["segments_info"], image=str(image_id))
    return ev


def panoptic_evaluate(gt_json: str | os.PathLike, gt_dir: str | os.PathLike,
                      pred_json: str | os.PathLike, pred_dir: str | os.PathLike, *,
                      quiet: bool | None = None, runner=None) -> PanopticResult:
    """PQ from COCO-panoptic JSON + PNG folders, as ``panopticapi.evaluation.pq_compute``
    (``runner``: where shards of images are evaluated, see ``masklab.metrics._shards``)."""
    from masklab.io.panoptic import load_panoptic
    from masklab.metrics._shards import merged

    gt = load_panoptic(gt_json, gt_dir)
    pred = load_panoptic(pred_json, pred_dir, categories=gt.data["categories"])
    for image_id in gt.annotation_by_image:
        if image_id not in pred.annotation_by_image:
            raise InputError(f"no prediction for image {image_id}", pred_json)
    paths = [str(p) for p in (gt_json, gt_dir, pred_json, pred_dir)]
    return merged(_panoptic_shard, list(gt.annotation_by_image), *paths, quiet, runner=runner)
