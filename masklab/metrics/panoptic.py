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


def _pair_counts(gt_ids: np.ndarray, pred_ids: np.ndarray) -> dict[tuple[int, int], int]:
    """Pixel count of every (gt segment, pred segment) pair that occurs."""
    key = gt_ids.astype(np.uint64).reshape(-1) * np.uint64(OFFSET) + \
        pred_ids.astype(np.uint64).reshape(-1)
    labels, counts = np.unique(key, return_counts=True)
    return {(int(k // OFFSET), int(k % OFFSET)): int(c)
            for k, c in zip(labels, counts, strict=True)}


class PanopticEvaluator:
    """Mergeable PQ: ``update`` per image with id maps and segment lists, then ``compute``."""

    def __init__(self, categories: Sequence[dict]):
        self.categories = {c["id"]: c for c in categories}
        self.stats: dict[int, _Stat] = {c: _Stat() for c in self.categories}

    def update(self, gt_ids: np.ndarray, gt_segments: Sequence[dict], pred_ids: np.ndarray,
               pred_segments: Sequence[dict], image: str = "") -> PanopticEvaluator:
        """``*_ids``: ``(H, W)`` segment-id maps; ``*_segments``: ``segments_info`` lists."""
        if gt_ids.shape != pred_ids.shape:
            raise InputError(f"image {image}: ground truth {gt_ids.shape} and prediction "
                             f"{pred_ids.shape} differ in size")
        gt_segms = {s["id"]: dict(s) for s in gt_segments}
        pred_segms = {s["id"]: dict(s) for s in pred_segments}
        unseen = set(pred_segms)
        labels, counts = np.unique(pred_ids, return_counts=True)
        for label, cnt in zip(labels.tolist(), counts.tolist(), strict=True):
            if label not in pred_segms:
                if label == VOID:
                    continue
                raise InputError(f"image {image}: segment {label} is in the PNG but not in "
                                 "the JSON")
            pred_segms[label]["area"] = cnt
            unseen.discard(label)
            if pred_segms[label]["category_id"] not in self.categories:
                raise InputError(f"image {image}: segment {label} has unknown category "
                                 f"{pred_segms[label]['category_id']}")
        if unseen:
            raise InputError(f"image {image}: segments {sorted(unseen)} are in the JSON but "
                             "not in the PNG")
        pairs = _pair_counts(gt_ids, pred_ids)
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


def panoptic_evaluate(gt_json: str | os.PathLike, gt_dir: str | os.PathLike,
                      pred_json: str | os.PathLike, pred_dir: str | os.PathLike, *,
                      quiet: bool | None = None) -> PanopticResult:
    """PQ from COCO-panoptic JSON + PNG folders, as ``panopticapi.evaluation.pq_compute``."""
    from masklab.io.panoptic import load_panoptic
    from masklab.progress import progress

    gt = load_panoptic(gt_json, gt_dir)
    pred = load_panoptic(pred_json, pred_dir, categories=gt.data["categories"])
    ev = PanopticEvaluator(gt.data["categories"])
    for image_id, ann in progress(gt.annotation_by_image.items(), desc="PQ",
                                  total=len(gt.annotation_by_image), quiet=quiet):
        if image_id not in pred.annotation_by_image:
            raise InputError(f"no prediction for image {image_id}", pred_json)
        pann = pred.annotation_by_image[image_id]
        ev.update(gt.read_ids(image_id), ann["segments_info"], pred.read_ids(image_id),
                  pann["segments_info"], image=str(image_id))
    return ev.compute()
