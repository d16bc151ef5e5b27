"""COCO detection, instance-segmentation and keypoint evaluation, identical to pycocotools.

``coco_evaluate(gt, results, iou_type)`` returns the 12 (bbox, segm) or 10 (keypoints)
``COCOeval.stats``, the precision/recall arrays and per-category AP. ``CocoEvaluator`` is the
same computation as a mergeable accumulator (``update`` per image, ``merge``, ``compute``).

Every rule of the reference is kept: results' ``area`` comes from the bbox when the first
result has one (as ``COCO.loadRes``), crowd ground truth matches many detections with
``IoU = inter / area(det)``, detections are cut at ``maxDets[-1]`` per image and category,
ties in score keep file order, and ground truth with id 0 counts as unmatched. The greedy
matching runs over all images at once, vectorised in numpy for small evaluations and compiled
(numba) for large ones (``_coco_match``); mask IoU uses pycocotools' C RLE code.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from masklab.errors import InputError
from masklab.metrics._coco_match import match_groups, sample_precision

IOU_TYPES = ("segm", "bbox", "keypoints")
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0


@dataclass
class CocoParams:
    """Evaluation parameters; the defaults are ``COCOeval``'s for each ``iou_type``."""

    iou_type: str = "segm"
    iou_thrs: np.ndarray = field(default_factory=lambda: np.linspace(
        .5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True))
    rec_thrs: np.ndarray = field(default_factory=lambda: np.linspace(
        .0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True))
    max_dets: tuple[int, ...] | None = None
    area_rngs: tuple[tuple[float, float], ...] | None = None
    area_labels: tuple[str, ...] | None = None
    kpt_sigmas: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {self.iou_type!r}")
        kp = self.iou_type == "keypoints"
        if self.max_dets is None:
            self.max_dets = (20,) if kp else (1, 10, 100)
        if self.area_rngs is None:
            whole, small = (0 ** 2, 1e5 ** 2), (0 ** 2, 32 ** 2)
            medium, large = (32 ** 2, 96 ** 2), (96 ** 2, 1e5 ** 2)
            self.area_rngs = (whole, medium, large) if kp else (whole, small, medium, large)
        if self.area_labels is None:
            self.area_labels = ("all", "medium", "large") if kp \
                else ("all", "small", "medium", "large")
        if kp and self.kpt_sigmas is None:
            self.kpt_sigmas = COCO_SIGMAS
        self.iou_thrs = np.asarray(self.iou_thrs, np.float64)
        self.rec_thrs = np.asarray(self.rec_thrs, np.float64)
        self.max_dets = tuple(int(m) for m in self.max_dets)
        if len(self.area_labels) != len(self.area_rngs):
            raise ValueError("area_labels and area_rngs differ in length")


# --- tables of annotations -------------------------------------------------------------------
@dataclass
class _Table:
    """Annotations of several images, sorted by (image, category, rank)."""

    img: np.ndarray  # image id
    cat: np.ndarray  # category id
    area: np.ndarray
    ids: np.ndarray
    score: np.ndarray | None = None  # detections only
    crowd: np.ndarray | None = None  # ground truth only
    ignore: np.ndarray | None = None  # ground truth only
    geom: list | np.ndarray | None = None  # RLE dicts, xywh boxes or keypoints
    bbox: np.ndarray | None = None  # keypoint ground truth: its xywh box (for OKS)

    def take(self, order: np.ndarray) -> _Table:
        def pick(v):
            if v is None:
                return None
            if isinstance(v, list):
                return [v[i] for i in order]
            return v[order]

        return _Table(**{k: pick(getattr(self, k)) for k in self.__dataclass_fields__})


def _gt_table(images: dict[int, tuple[int, int]], anns: Sequence[dict], iou_type: str,
              cat_ids: set) -> _Table:
    anns = [a for a in anns if a["category_id"] in cat_ids and a["image_id"] in images]
    n = len(anns)
    img = np.fromiter((a["image_id"] for a in anns), np.int64, n)
    cat = np.fromiter((a["category_id"] for a in anns), np.int64, n)
    ids = np.fromiter((a["id"] for a in anns), np.int64, n)
    crowd = np.fromiter((bool(a.get("iscrowd", 0)) for a in anns), bool, n)
    ignore = crowd.copy()
    if iou_type == "keypoints":
        ignore |= np.fromiter((a.get("num_keypoints", 0) == 0 for a in anns), bool, n)
    order = np.lexsort((np.arange(n), cat, img))  # stable: file order within a group
    anns = [anns[i] for i in order]
    img, cat, ids, crowd, ignore = img[order], cat[order], ids[order], crowd[order], ignore[order]
    geom = _geometry(anns, img, images, iou_type)
    bbox = None
    if iou_type == "keypoints":
        bbox = np.array([a.get("bbox", [0, 0, 0, 0]) for a in anns], np.float64).reshape(-1, 4)
    area = np.array([a["area"] if "area" in a else np.nan for a in anns], np.float64)
    missing = np.isnan(area)
    if missing.any():  # pycocotools would fail; we use the mask or box area
        idx = np.flatnonzero(missing)
        if iou_type == "segm":
            area[idx] = _areas(_segm_rles([geom[i] for i in idx],
                                          [images[int(img[i])] for i in idx]), "segm")
        else:
            area[idx] = _areas([geom[i] for i in idx], iou_type)
    return _Table(img, cat, area, ids, crowd=crowd, ignore=ignore, geom=geom, bbox=bbox)


def _areas(geoms, iou_type: str) -> np.ndarray:
    if iou_type == "segm":
        from masklab.rle import area

        return area(geoms).astype(np.float64)
    return np.array([g[2] * g[3] for g in geoms], np.float64)


def _geometry(anns: list[dict], img: np.ndarray, images: dict, iou_type: str):
    if iou_type == "bbox":
        return np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
    if iou_type == "keypoints":
        return [np.asarray(a["keypoints"], np.float64) for a in anns]
    return [a["segmentation"] for a in anns]  # rasterised lazily, only where compared


def _segm_rles(segs: list, sizes: list[tuple[int, int]]) -> list[dict]:
    """pycocotools ``annToRLE`` for each segmentation, one C call for all the polygons."""
    from pycocotools import mask as coco_mask

    out: list = [None] * len(segs)
    flat, owners = [], []
    for i, (seg, (h, w)) in enumerate(zip(segs, sizes, strict=True)):
        if isinstance(seg, list):
            if not seg:  # an empty polygon list is an empty mask
                out[i] = coco_mask.encode(np.zeros((h, w, 1), np.uint8, order="F"))[0]
            flat += seg
            owners += [i] * len(seg)
        elif isinstance(seg["counts"], list):
            out[i] = coco_mask.frPyObjects(seg, h, w)
        else:
            c = seg["counts"]
            out[i] = {"size": seg["size"], "counts": c.encode("ascii") if isinstance(c, str)
                      else c}
    if flat:
        # frPyObjects wants one size per call: group polygons by image size
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, i in enumerate(owners):
            by_size.setdefault(sizes[i], []).append(k)
        rles: list = [None] * len(flat)
        for (h, w), ks in by_size.items():
            for k, r in zip(ks, coco_mask.frPyObjects([flat[k] for k in ks], h, w),
                            strict=True):
                rles[k] = r
        start = 0
        while start < len(owners):
            end = start
            while end < len(owners) and owners[end] == owners[start]:
                end += 1
            part = rles[start:end]
            out[owners[start]] = part[0] if len(part) == 1 else coco_mask.merge(part)
            start = end
    return out


def _dt_table(results: Sequence[dict], images: dict, iou_type: str, cat_ids: set,
              max_det: int, path=None) -> _Table:
    """``COCO.loadRes`` + the per-group score sort and ``maxDets[-1]`` cut of ``evaluate``."""
    if len(results) == 0:
        e = np.zeros(0, np.int64)
        return _Table(e, e, np.zeros(0), e, score=np.zeros(0), geom=[] if iou_type != "bbox"
                      else np.zeros((0, 4)))
    unknown = {r["image_id"] for r in results} - images.keys()
    if unknown:
        raise InputError(f"results refer to image ids not in the ground truth: "
                         f"{sorted(unknown)[:5]}", path)
    first = results[0]
    bbox_branch = "bbox" in first and first["bbox"] != []
    n_all = len(results)
    det_ids = np.arange(1, n_all + 1)  # loadRes numbers all results from 1
    keep = [i for i, r in enumerate(results) if r["category_id"] in cat_ids]
    results = [results[i] for i in keep]
    n = len(results)
    img = np.fromiter((r["image_id"] for r in results), np.int64, n)
    cat = np.fromiter((r["category_id"] for r in results), np.int64, n)
    score = np.fromiter((r["score"] for r in results), np.float64, n)
    ids = det_ids[keep]
    # sort by (image, category, -score), stable (mergesort) like evaluate's argsort
    order = np.lexsort((np.arange(n), -score, cat, img))
    img, cat, score, ids = img[order], cat[order], score[order], ids[order]
    results = [results[i] for i in order]
    # rank within (image, category); keep the first max_det
    new_group = np.ones(n, bool)
    new_group[1:] = (img[1:] != img[:-1]) | (cat[1:] != cat[:-1])
    starts = np.flatnonzero(new_group)
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    sel = np.flatnonzero(rank < max_det)
    results = [results[i] for i in sel]
    img, cat, score, ids = img[sel], cat[sel], score[sel], ids[sel]
    if bbox_branch:
        try:
            area = np.array([r["bbox"][2] * r["bbox"][3] for r in results], np.float64)
        except (KeyError, IndexError, TypeError):
            raise InputError("results: the first detection has a bbox, so all need one "
                             "(pycocotools takes areas from boxes then)", path) from None
    else:
        area = None
    if iou_type == "bbox":
        geom = np.array([r["bbox"] for r in results], np.float64).reshape(-1, 4)
    elif iou_type == "segm":
        geom = [r["segmentation"] for r in results]
    else:
        geom = [np.asarray(r["keypoints"], np.float64) for r in results]
    if area is None:
        if iou_type == "segm":  # masks of every detection are needed for their areas
            geom = _segm_rles(geom, [images[int(i)] for i in img])
            area = _areas(geom, "segm")
        elif iou_type == "keypoints":
            area = np.array([(k[0::3].max() - k[0::3].min()) * (k[1::3].max() - k[1::3].min())
                             for k in geom], np.float64)
        else:
            area = _areas(geom, "bbox")
    return _Table(img, cat, area, ids, score=score, geom=geom)


# --- IoU of every (image, category) group --------------------------------------------------
@dataclass
class _Groups:
    img: np.ndarray
    cat: np.ndarray
    d_start: np.ndarray
    d_count: np.ndarray
    g_start: np.ndarray
    g_count: np.ndarray
    pair_start: np.ndarray


def _groups(gt: _Table, dt: _Table) -> _Groups:
    keys_g = np.stack([gt.img, gt.cat], 1)
    keys_d = np.stack([dt.img, dt.cat], 1)
    allk = np.unique(np.concatenate([keys_g, keys_d]).reshape(-1, 2), axis=0)
    def span(keys):
        if len(keys) == 0:
            z = np.zeros(len(allk), np.int64)
            return z, z
        lo = _searchsorted_rows(keys, allk, "left")
        hi = _searchsorted_rows(keys, allk, "right")
        return lo, hi - lo
    g_start, g_count = span(keys_g)
    d_start, d_count = span(keys_d)
    pairs = d_count * g_count
    pair_start = np.concatenate([[0], np.cumsum(pairs)[:-1]]).astype(np.int64)
    return _Groups(allk[:, 0], allk[:, 1], d_start, d_count, g_start, g_count, pair_start)


def _searchsorted_rows(sorted_keys: np.ndarray, queries: np.ndarray, side: str) -> np.ndarray:
    """searchsorted on (img, cat) rows sorted lexicographically."""
    base = int(max(sorted_keys[:, 1].max(initial=0), queries[:, 1].max(initial=0))) + 1
    lo = int(min(sorted_keys[:, 0].min(initial=0), queries[:, 0].min(initial=0)))
    a = (sorted_keys[:, 0] - lo) * base + sorted_keys[:, 1]
    q = (queries[:, 0] - lo) * base + queries[:, 1]
    return np.searchsorted(a, q, side=side)


def _pair_index(grp: _Groups) -> tuple[np.ndarray, np.ndarray]:
    """Global (det, gt) indices of every pair, group blocks row-major."""
    pairs = grp.d_count * grp.g_count
    total = int(pairs.sum())
    owner = np.repeat(np.arange(len(pairs)), pairs)
    within = np.arange(total) - grp.pair_start[owner]
    G = grp.g_count[owner]
    return grp.d_start[owner] + within // np.maximum(G, 1), grp.g_start[owner] + within % \
        np.maximum(G, 1)


def _box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` on paired xywh rows, with its float operations in its order."""
    w = np.fmin(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.fmax(dt[:, 0], gt[:, 0])
    h = np.fmin(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.fmax(dt[:, 1], gt[:, 1])
    da = dt[:, 2] * dt[:, 3]
    ga = gt[:, 2] * gt[:, 3]
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / union
    return np.where((w > 0) & (h > 0), out, 0.0)


def _segm_iou(gt: _Table, dt: _Table, grp: _Groups, images: dict) -> np.ndarray:
    """Mask IoU of all pairs: one pycocotools C call per image over that image's groups;
    only annotations that are compared are rasterised."""
    from pycocotools import mask as coco_mask

    out = np.zeros(int((grp.d_count * grp.g_count).sum()), np.float64)
    both = np.flatnonzero((grp.d_count > 0) & (grp.g_count > 0))
    if len(both) == 0:
        return out
    imgs = grp.img[both]
    bounds = np.flatnonzero(np.r_[True, imgs[1:] != imgs[:-1], True])
    for s, e in itertools.pairwise(bounds):
        gs = both[s:e]
        d_idx = np.concatenate([np.arange(grp.d_start[g], grp.d_start[g] + grp.d_count[g])
                                for g in gs])
        g_idx = np.concatenate([np.arange(grp.g_start[g], grp.g_start[g] + grp.g_count[g])
                                for g in gs])
        size = images[int(imgs[s])]
        rles = _segm_rles([dt.geom[i] for i in d_idx] + [gt.geom[i] for i in g_idx],
                          [size] * (len(d_idx) + len(g_idx)))
        m = np.asarray(coco_mask.iou(rles[:len(d_idx)], rles[len(d_idx):],
                                     gt.crowd[g_idx].astype(np.uint8)), np.float64)
        m = m.reshape(len(d_idx), len(g_idx))
        d_off = g_off = 0
        for g in gs:
            D, G = grp.d_count[g], grp.g_count[g]
            block = m[d_off:d_off + D, g_off:g_off + G]
            out[grp.pair_start[g]:grp.pair_start[g] + D * G] = block.reshape(-1)
            d_off += D
            g_off += G
    return out


def _oks(gt: _Table, dt: _Table, grp: _Groups, sigmas: np.ndarray) -> np.ndarray:
    """pycocotools' ``computeOks`` for all pairs (same operations, same order)."""
    out = np.zeros(int((grp.d_count * grp.g_count).sum()), np.float64)
    var = (sigmas * 2) ** 2
    k = len(sigmas)
    for g in np.flatnonzero((grp.d_count > 0) & (grp.g_count > 0)):
        D, G = grp.d_count[g], grp.g_count[g]
        dts = np.stack([dt.geom[i] for i in range(grp.d_start[g], grp.d_start[g] + D)])
        xd, yd = dts[:, 0::3], dts[:, 1::3]
        block = np.zeros((D, G))
        for j in range(G):
            gi = grp.g_start[g] + j
            gk = gt.geom[gi]
            xg, yg, vg = gk[0::3], gk[1::3], gk[2::3]
            k1 = np.count_nonzero(vg > 0)
            if k1 > 0:
                dx, dy = xd - xg, yd - yg
            else:
                bb = gt.bbox[gi]
                x0, x1 = bb[0] - bb[2], bb[0] + bb[2] * 2
                y0, y1 = bb[1] - bb[3], bb[1] + bb[3] * 2
                z = np.zeros(k)
                dx = np.maximum(z, x0 - xd) + np.maximum(z, xd - x1)
                dy = np.maximum(z, y0 - yd) + np.maximum(z, yd - y1)
            e = (dx ** 2 + dy ** 2) / var / (gt.area[gi] + np.spacing(1)) / 2
            if k1 > 0:
                e = e[:, vg > 0]
            block[:, j] = np.array([np.sum(np.exp(-row)) / row.shape[0] for row in e])
        out[grp.pair_start[g]:grp.pair_start[g] + D * G] = block.reshape(-1)
    return out


# --- per-image evaluation: the mergeable state ----------------------------------------------
@dataclass
class _Evaluated:
    """What accumulation needs: per detection its match state, per ground truth its flags."""

    d_img: np.ndarray
    d_cat: np.ndarray
    d_rank: np.ndarray
    d_score: np.ndarray
    d_matched: np.ndarray  # (A, T, N) bool: matched a ground truth with nonzero id
    d_ignore: np.ndarray  # (A, T, N) bool
    g_img: np.ndarray
    g_cat: np.ndarray
    g_counted: np.ndarray  # (A, G) bool: counts towards recall's denominator

    @staticmethod
    def cat(parts: Sequence[_Evaluated]) -> _Evaluated:
        return _Evaluated(
            *[np.concatenate([getattr(p, f) for p in parts], axis=-1)
              for f in _Evaluated.__dataclass_fields__])


def _evaluate(gt: _Table, dt: _Table, params: CocoParams, images: dict) -> _Evaluated:
    grp = _groups(gt, dt)
    if params.iou_type == "segm":
        ious = _segm_iou(gt, dt, grp, images)
    elif params.iou_type == "bbox":
        di, gi = _pair_index(grp)
        ious = _box_iou(dt.geom[di], gt.geom[gi], gt.crowd[gi])
    else:
        ious = _oks(gt, dt, grp, np.asarray(params.kpt_sigmas, np.float64))
    rngs = np.asarray(params.area_rngs, np.float64)
    dt_match, dt_ignore = match_groups(
        grp.d_start, grp.d_count, grp.g_start, grp.g_count, grp.pair_start, ious, gt.area,
        gt.ignore, gt.crowd, gt.ids, dt.area, rngs, params.iou_thrs)
    rank = np.zeros(len(dt.img), np.int64)
    for s, c in zip(grp.d_start, grp.d_count, strict=True):
        rank[s:s + c] = np.arange(c)
    counted = ~(gt.ignore[None] | (gt.area[None] < rngs[:, :1]) | (gt.area[None] > rngs[:, 1:]))
    return _Evaluated(dt.img, dt.cat, rank, dt.score, dt_match != 0, dt_ignore, gt.img, gt.cat,
                      counted)


# --- accumulate and summarise ----------------------------------------------------------------
@dataclass
class CocoResult:
    """``stats`` in pycocotools order, plus everything behind them."""

    iou_type: str
    stats: np.ndarray
    stat_names: list[str]
    precision: np.ndarray  # (T, R, K, A, M), -1 where undefined
    recall: np.ndarray  # (T, K, A, M)
    scores: np.ndarray  # (T, R, K, A, M)
    cat_ids: list[int]
    cat_names: dict[int, str]
    params: CocoParams
    simple: dict = field(default_factory=dict)  # precision, recall, F1 at IoU 0.5

    def per_category(self) -> dict[int, dict[str, float]]:
        """AP, AP50, AP75 (area all, last maxDets) of each category; nan where undefined."""
        p = self.params
        m = len(p.max_dets) - 1
        out = {}
        for k, cid in enumerate(self.cat_ids):
            row = {"name": self.cat_names.get(cid, str(cid))}
            for label, t in (("AP", None), ("AP50", .5), ("AP75", .75)):
                s = self.precision[:, :, k, 0, m]
                if t is not None:
                    s = s[np.flatnonzero(np.isclose(p.iou_thrs, t))]
                v = s[s > -1]
                row[label] = float(np.mean(v)) if v.size else float("nan")
            out[cid] = row
        return out

    def to_dict(self) -> dict:
        def clean(v):
            return None if v != v else v

        per = {str(c): {k: clean(v) if isinstance(v, float) else v for k, v in row.items()}
               for c, row in self.per_category().items()}
        return {"iou_type": self.iou_type, "stats": [float(s) for s in self.stats],
                "stat_names": self.stat_names, "per_category": per, "simple": self.simple}


def _accumulate(ev: _Evaluated, cat_ids: list[int], params: CocoParams):
    T, R = len(params.iou_thrs), len(params.rec_thrs)
    K, A, M = len(cat_ids), len(params.area_rngs), len(params.max_dets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    # canonical order: image id, then rank within the group (category fixed below)
    order = np.lexsort((ev.d_rank, ev.d_img))
    d_cat, d_rank, d_score = ev.d_cat[order], ev.d_rank[order], ev.d_score[order]
    d_matched, d_ignore = ev.d_matched[:, :, order], ev.d_ignore[:, :, order]
    npig_all = {cid: ev.g_counted[:, ev.g_cat == cid].sum(axis=1) for cid in cat_ids}
    by_cat = {}
    for cid in cat_ids:
        idx = np.flatnonzero(d_cat == cid)
        by_cat[cid] = idx[np.argsort(-d_score[idx], kind="mergesort")]
    eps = np.spacing(1)
    for k, cid in enumerate(cat_ids):
        idx_all = by_cat[cid]
        for m, max_det in enumerate(params.max_dets):
            idx = idx_all[d_rank[idx_all] < max_det]
            sc = d_score[idx]
            for a in range(A):
                npig = int(npig_all[cid][a])
                if npig == 0:
                    continue
                matched, ignored = d_matched[a][:, idx], d_ignore[a][:, idx]
                tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(float)
                fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + eps)
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                if nd == 0:
                    precision[:, :, k, a, m] = 0
                    scores[:, :, k, a, m] = 0
                    continue
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                q, ss = sample_precision(rc, np.ascontiguousarray(pr), sc, params.rec_thrs)
                precision[:, :, k, a, m] = q
                scores[:, :, k, a, m] = ss
    return precision, recall, scores


def _summarize(precision, recall, params: CocoParams) -> tuple[np.ndarray, list[str]]:
    def one(ap, iou_thr=None, area="all", max_dets=100):
        a = [i for i, lab in enumerate(params.area_labels) if lab == area]
        m = [i for i, d in enumerate(params.max_dets) if d == max_dets]
        if ap:
            s = precision[:, :, :, a, m]
            if iou_thr is not None:
                s = s[np.where(iou_thr == params.iou_thrs)[0]]
        else:
            s = recall[:, :, a, m]
            if iou_thr is not None:
                s = s[np.where(iou_thr == params.iou_thrs)[0]]
        v = s[s > -1]
        return -1.0 if v.size == 0 else float(np.mean(v))

    md = params.max_dets
    if params.iou_type == "keypoints":
        spec = [(1, None, "all", 20), (1, .5, "all", 20), (1, .75, "all", 20),
                (1, None, "medium", 20), (1, None, "large", 20), (0, None, "all", 20),
                (0, .5, "all", 20), (0, .75, "all", 20), (0, None, "medium", 20),
                (0, None, "large", 20)]
        names = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
    else:
        last = md[2] if len(md) > 2 else md[-1]
        # stats[0] uses maxDets=100 literally in pycocotools, whatever params.maxDets holds
        spec = [(1, None, "all", 100), (1, .5, "all", last), (1, .75, "all", last),
                (1, None, "small", last), (1, None, "medium", last), (1, None, "large", last),
                (0, None, "all", md[0]), (0, None, "all", md[1] if len(md) > 1 else md[-1]),
                (0, None, "all", last), (0, None, "small", last), (0, None, "medium", last),
                (0, None, "large", last)]
        names = ["AP", "AP50", "AP75", "APs", "APm", "APl", f"AR{md[0]}",
                 f"AR{md[1] if len(md) > 1 else md[-1]}", f"AR{last}", "ARs", "ARm", "ARl"]
    return np.array([one(*s) for s in spec]), names


def _simple(ev: _Evaluated, params: CocoParams) -> dict:
    """The lecture's figures: precision, recall and F1 at IoU 0.5 over all categories."""
    t = np.flatnonzero(np.isclose(params.iou_thrs, 0.5))
    if len(t) == 0:
        return {}
    valid = ~ev.d_ignore[0, t[0]] & (ev.d_rank < params.max_dets[-1])
    tp = int((ev.d_matched[0, t[0]] & valid).sum())
    fp = int((~ev.d_matched[0, t[0]] & valid).sum())
    npos = int(ev.g_counted[0].sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / npos if npos else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision@0.5": p, "recall@0.5": r, "f1@0.5": f1, "tp": tp, "fp": fp,
            "num_gt": npos}


def _with_map50(simple: dict, stats: np.ndarray, iou_type: str) -> dict:
    if simple:
        simple["mAP@0.5"] = float(stats[1])  # AP50 averaged over categories
    return simple


# --- public API ------------------------------------------------------------------------------
class CocoEvaluator:
    """Mergeable COCO evaluation: ``update`` with one or more images' ground truth and
    detections, ``merge`` evaluators from other workers, then ``compute``."""

    def __init__(self, categories: Sequence[dict], iou_type: str = "segm",
                 params: CocoParams | None = None):
        self.params = params or CocoParams(iou_type)
        if self.params.iou_type != iou_type:
            raise ValueError("params.iou_type differs from iou_type")
        self.categories = list(categories)
        self.cat_ids = sorted(c["id"] for c in self.categories)
        self._parts: list[_Evaluated] = []
        self._image_ids: set[int] = set()

    def update(self, images: Sequence[dict], annotations: Sequence[dict],
               results: Sequence[dict]) -> CocoEvaluator:
        """Add images (``id``, ``height``, ``width``), their ground truth and detections."""
        return self._add(*self._tables(images, annotations, results))

    def _tables(self, images, annotations, results) -> tuple[_Table, _Table, dict]:
        """Ground truth and detections as tables (sorted by image), and the image sizes."""
        sizes = {img["id"]: (img["height"], img["width"]) for img in images}
        cats = set(self.cat_ids)
        gt = _gt_table(sizes, annotations, self.params.iou_type, cats)
        dt = _dt_table(list(results), sizes, self.params.iou_type, cats,
                       self.params.max_dets[-1])
        return gt, dt, sizes

    def _add(self, gt: _Table, dt: _Table, sizes: dict) -> CocoEvaluator:
        again = self._image_ids & sizes.keys()
        if again:
            raise ValueError(f"images already evaluated: {sorted(again)[:5]}")
        self._image_ids |= sizes.keys()
        self._parts.append(_evaluate(gt, dt, self.params, sizes))
        return self

    def merge(self, other: CocoEvaluator) -> CocoEvaluator:
        """Combine with an evaluator of other images (same categories and parameters)."""
        if other.cat_ids != self.cat_ids or other.params.iou_type != self.params.iou_type:
            raise ValueError("cannot merge evaluators of different categories or iou types")
        again = self._image_ids & other._image_ids
        if again:
            raise ValueError(f"both evaluators hold images {sorted(again)[:5]}")
        self._parts += other._parts
        self._image_ids |= other._image_ids
        return self

    def compute(self) -> CocoResult:
        ev = _Evaluated.cat(self._parts) if self._parts else _empty_evaluated(self.params)
        precision, recall, scores = _accumulate(ev, self.cat_ids, self.params)
        stats, names = _summarize(precision, recall, self.params)
        return CocoResult(self.params.iou_type, stats, names, precision, recall, scores,
                          self.cat_ids, {c["id"]: c["name"] for c in self.categories},
                          self.params, _with_map50(_simple(ev, self.params), stats,
                                                   self.params.iou_type))


def _empty_evaluated(params: CocoParams) -> _Evaluated:
    A, T = len(params.area_rngs), len(params.iou_thrs)
    e = np.zeros(0, np.int64)
    return _Evaluated(e, e, e, np.zeros(0), np.zeros((A, T, 0), bool), np.zeros((A, T, 0), bool),
                      e, e, np.zeros((A, 0), bool))


def coco_evaluate(gt: dict | str | os.PathLike, results: list | str | os.PathLike,
                  iou_type: str = "segm", params: CocoParams | None = None, *,
                  runner=None) -> CocoResult:
    """Evaluate COCO results against ground truth (dicts or JSON paths) in one call."""
    from masklab.io.coco import load_coco, load_results, read_json, validate_coco

    if isinstance(gt, dict):
        validate_coco(gt)
        gt_data = gt
    else:
        ds = load_coco(gt)
        gt_data = ds.to_dict()
    if not isinstance(results, list):
        results = load_results(results, iou_type=iou_type) if iou_type else read_json(results)
    return coco_evaluate_images(gt_data["categories"], gt_data["images"],
                                gt_data.get("annotations", []), results, iou_type, params,
                                runner=runner)


def _coco_shard(blocks: list, categories: list, iou_type: str, params) -> CocoEvaluator:
    ev = CocoEvaluator(categories, iou_type, params)
    for gt, dt, sizes in blocks:
        ev._add(gt, dt, sizes)
    return ev


def coco_evaluate_images(categories: Sequence[dict], images: Sequence[dict],
                         annotations: Sequence[dict], results: Sequence[dict],
                         iou_type: str = "segm", params: CocoParams | None = None, *,
                         runner=None, blocks: int = 256) -> CocoResult:
    """COCO evaluation of loaded ground truth and results; with ``runner`` (see
    ``masklab.metrics._shards``) the matching is spread out: the ground truth and detections
    are turned into tables here (as in-process), cut into up to ``blocks`` runs of images in
    id order, and the runner evaluates contiguous runs of blocks; only numpy tables travel
    and the accumulators come back, merged in image order (the in-process figures)."""
    ev = CocoEvaluator(categories, iou_type, params)
    if runner is None:
        return ev.update(images, annotations, results).compute()
    from masklab.metrics._shards import merged

    gt, dt, sizes = ev._tables(images, annotations, results)
    if not sizes:
        return ev.compute()
    ids = np.array(sorted(sizes), np.int64)
    cuts = np.unique(np.linspace(0, len(ids), min(blocks, len(ids)) + 1).astype(int))
    units = []
    for lo, hi in itertools.pairwise(cuts.tolist()):
        a, b = ids[lo], ids[hi - 1]

        def rows(t: _Table, a=a, b=b):
            return t.take(np.arange(np.searchsorted(t.img, a, "left"),
                                    np.searchsorted(t.img, b, "right")))

        units.append((rows(gt), rows(dt), {int(i): sizes[int(i)] for i in ids[lo:hi]}))
    return merged(_coco_shard, units, list(categories), iou_type, ev.params, runner=runner)
