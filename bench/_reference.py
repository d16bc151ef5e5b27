"""Transcriptions of the official reference algorithms, kept only to time them beside ours.

- ``pq_single_image``: panopticapi ``pq_compute_single_core``'s body for one image
  (cocodataset/panopticapi, evaluation.py), on in-memory id maps.
- ``davis_object``: davis2017-evaluation's ``db_eval_iou`` and ``db_eval_boundary`` with its
  ``f_measure`` and ``_seg2bmap`` (davisvideochallenge/davis2017-evaluation, metrics.py) for
  one object's frames.
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

OFFSET = 256 * 256 * 256
VOID = 0


def rgb2id(color):
    if isinstance(color, np.ndarray) and len(color.shape) == 3:
        if color.dtype == np.uint8:
            color = color.astype(np.int32)
        return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]
    return int(color[0] + 256 * color[1] + 256 * 256 * color[2])


class PQStatCat:
    def __init__(self):
        self.iou, self.tp, self.fp, self.fn = 0.0, 0, 0, 0


def pq_single_image(pan_gt, gt_segments, pan_pred, pred_segments, categories, pq_stat):
    gt_segms = {el["id"]: dict(el) for el in gt_segments}
    pred_segms = {el["id"]: dict(el) for el in pred_segments}
    pred_labels_set = {el["id"] for el in pred_segments}
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels, labels_cnt, strict=True):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise KeyError(label)
        pred_segms[label]["area"] = label_cnt
        pred_labels_set.remove(label)
    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels, labels_cnt, strict=True):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        if gt_segms[gt_label]["iscrowd"] == 1:
            continue
        if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
            continue
        union = pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection - \
            gt_pred_map.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            pq_stat[gt_segms[gt_label]["category_id"]].tp += 1
            pq_stat[gt_segms[gt_label]["category_id"]].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info["iscrowd"] == 1:
            crowd_labels_dict[gt_info["category_id"]] = gt_label
            continue
        pq_stat[gt_info["category_id"]].fn += 1
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info["category_id"] in crowd_labels_dict:
            intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]],
                                             pred_label), 0)
        if intersection / pred_info["area"] > 0.5:
            continue
        pq_stat[pred_info["category_id"]].fp += 1


def pq_stats():
    return defaultdict(PQStatCat)


def db_eval_iou(annotation, segmentation, void_pixels=None):
    annotation = annotation.astype(bool)
    segmentation = segmentation.astype(bool)
    void_pixels = np.zeros_like(segmentation) if void_pixels is None else \
        void_pixels.astype(bool)
    inters = np.sum((segmentation & annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void_pixels), axis=(-2, -1))
    j = inters / union
    if j.ndim == 0:
        j = 1 if np.isclose(union, 0) else j
    else:
        j[np.isclose(union, 0)] = 1
    return j


def _seg2bmap(seg):
    seg = seg.astype(bool)
    seg[seg > 0] = 1
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def f_measure(foreground_mask, gt_mask, void_pixels=None, bound_th=0.008):
    from skimage.morphology import disk

    void_pixels = np.zeros_like(foreground_mask).astype(bool) if void_pixels is None else \
        void_pixels.astype(bool)
    bound_pix = bound_th if bound_th >= 1 else \
        np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = _seg2bmap(foreground_mask * np.logical_not(void_pixels))
    gt_boundary = _seg2bmap(gt_mask * np.logical_not(void_pixels))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg = np.sum(fg_boundary)
    n_gt = np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = np.sum(fg_match) / float(n_fg)
        recall = np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def db_eval_boundary(annotation, segmentation, void_pixels=None, bound_th=0.008):
    f_res = np.zeros(annotation.shape[0])
    for t in range(annotation.shape[0]):
        v = None if void_pixels is None else void_pixels[t]
        f_res[t] = f_measure(segmentation[t], annotation[t], v, bound_th=bound_th)
    return f_res


def davis_sequence(gt_ids, res_ids):
    """Semi-supervised J and F arrays of one sequence, as evaluation.py does it."""
    masks = gt_ids.astype(np.float64)
    num_objects = int(np.max(masks[0]))
    tmp = np.ones((num_objects, *masks.shape)) * np.arange(1, num_objects + 1)[:, None, None,
                                                                              None]
    gt = (tmp == masks[None]) > 0
    gt = gt[:, 1:-1]
    res = res_ids.astype(np.float64)
    n_res = int(np.max(res))
    tmp = np.ones((n_res, *res.shape)) * np.arange(1, n_res + 1)[:, None, None, None]
    res = (tmp == res[None]) > 0
    if res.shape[0] < gt.shape[0]:
        res = np.concatenate([res, np.zeros((gt.shape[0] - res.shape[0], *res.shape[1:]))])
    j = np.zeros(gt.shape[:2])
    f = np.zeros(gt.shape[:2])
    for i in range(gt.shape[0]):
        j[i] = db_eval_iou(gt[i], res[i])
        f[i] = db_eval_boundary(gt[i], res[i])
    return j, f
