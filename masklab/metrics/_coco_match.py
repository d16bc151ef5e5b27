"""COCO's greedy matching and precision sampling: numpy for small evaluations, numba for large.

A process pays about half a second to import numba and load its cached kernels; a small
evaluation is done in less. ``match_groups`` therefore runs the vectorised numpy matcher below
unless the work (detections × area ranges × IoU thresholds × ground truths per group) is large
enough to pay for numba (``_coco_match_jit``, the same decisions). Both follow pycocotools'
``COCOeval.evaluateImg`` exactly: ground truths ignored for the area range are tried last, a
taken non-crowd ground truth is skipped, the best IoU ≥ threshold wins and ties go to the last
ground truth in that order.
"""

from __future__ import annotations

import numpy as np

#: numpy matcher seconds (estimated) above which numba pays for its start-up (~0.6 s)
JIT_SECONDS = 0.5


def match_groups(gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area, g_ignore,
                 g_crowd, g_id, d_area, area_rngs, iou_thrs, *, jit: bool | None = None):
    """Greedy matching of every (image, category) group; see ``_coco_match_jit``.

    Returns ``dt_match`` (A, T, N): the matched ground truth's id (0: none), and ``dt_ignore``
    (A, T, N). ``jit``: force (True) or forbid (False) numba; None chooses by the work.
    """
    if jit is None:
        jit = _numpy_seconds(gd_count, gg_count, len(area_rngs) * len(iou_thrs)) > \
            JIT_SECONDS and _have_numba()
    if jit:
        from masklab.metrics import _coco_match_jit

        return _coco_match_jit.match_groups(
            gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area, g_ignore,
            g_crowd, g_id, d_area, area_rngs, iou_thrs)
    return _match_numpy(gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area,
                        g_ignore, g_crowd, g_id, d_area, area_rngs, iou_thrs)


def _numpy_seconds(gd_count, gg_count, states: int) -> float:
    """The numpy matcher's time, as measured on 2 cores: per detection of a group with
    ground truths, a fixed cost and one per padded ground-truth slot, for each of ``states``
    (area range, threshold) pairs."""
    live = (gd_count > 0) & (gg_count > 0)
    width = 2.0 ** np.ceil(np.log2(np.maximum(gg_count[live], 1)))
    return float((gd_count[live] * (15 + width)).sum()) * states / 200e6


def _have_numba() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def _match_numpy(gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area, g_ignore,
                 g_crowd, g_id, d_area, area_rngs, iou_thrs):
    A, T, N = len(area_rngs), len(iou_thrs), len(d_area)
    dt_match = np.zeros((A, T, N), np.int64)
    dt_ignore = np.zeros((A, T, N), bool)
    thr = np.minimum(np.asarray(iou_thrs, np.float64), 1 - 1e-10)
    lo, hi = area_rngs[:, 0], area_rngs[:, 1]
    live = np.flatnonzero((gd_count > 0) & (gg_count > 0))
    # groups of similar width together: padding to the widest group of a bucket stays small
    width = np.maximum(1, 2 ** np.ceil(np.log2(np.maximum(gg_count[live], 1)))).astype(int)
    for w in np.unique(width):
        grp = live[width == w]
        _match_bucket(grp, int(w), gd_start, gd_count, gg_start, gg_count, pair_start, ious,
                      g_area, g_ignore, g_crowd, g_id, lo, hi, thr, dt_match, dt_ignore)
    out = (d_area[None] < lo[:, None]) | (d_area[None] > hi[:, None])  # (A, N)
    dt_ignore |= (dt_match == 0) & out[:, None, :]
    return dt_match, dt_ignore


def _match_bucket(grp, W, gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area,
                  g_ignore, g_crowd, g_id, lo, hi, thr, dt_match, dt_ignore):
    """Groups ``grp`` (each with at most ``W`` ground truths) matched together, one
    detection rank at a time; every (group, area, threshold) is its own greedy state."""
    A, T = len(lo), len(thr)
    n = len(grp)
    G = gg_count[grp]
    slot = np.arange(W)
    valid = slot[None] < G[:, None]  # (n, W)
    gidx = np.where(valid, gg_start[grp][:, None] + slot[None], 0)
    area = g_area[gidx]
    ign = g_ignore[gidx][:, None] | (area[:, None] < lo[None, :, None]) | \
        (area[:, None] > hi[None, :, None])  # (n, A, W): ignored for the area range
    crowd = g_crowd[gidx] & valid  # (n, W)
    ids = g_id[gidx]
    taken = np.zeros((n, A, T, W), bool)
    D = gd_count[grp]
    for r in range(int(D.max())):
        act = np.flatnonzero(D > r)
        if act.size == 0:
            break
        g = grp[act]
        v = ious[np.where(valid[act], pair_start[g][:, None] + r * G[act][:, None] + slot[None],
                          0)]  # (m, W)
        ok = valid[act][:, None, None, :] & (v[:, None, None, :] >= thr[None, None, :, None]) \
            & ~(taken[act] & ~crowd[act][:, None, None, :])  # (m, 1|A, T, W)
        ok = np.broadcast_to(ok, (act.size, A, T, W))
        ig = ign[act][:, :, None, :]  # (m, A, 1, W)
        first = ok & ~ig  # the non-ignored are tried first; the ignored only if none matched
        use = np.where(first.any(-1, keepdims=True), first, ok & ig)
        score = np.where(use, v[:, None, None, :], -1.0)
        # the last slot holding the best score (pycocotools' ``>=`` replaces ties)
        best = score.max(-1, keepdims=True)
        m = W - 1 - np.argmax((score == best)[..., ::-1], axis=-1)  # (m, A, T)
        hit = best[..., 0] >= 0
        det = gd_start[g] + r  # (m,)
        rows, a_i, t_i = np.nonzero(hit)
        ms = m[rows, a_i, t_i]
        dt_match[a_i, t_i, det[rows]] = ids[act[rows], ms]
        dt_ignore[a_i, t_i, det[rows]] = ign[act[rows], a_i, ms]
        taken[act[rows], a_i, t_i, ms] = True


def sample_precision(rc, pr, sc, rec_thrs):
    """``COCOeval.accumulate``'s sampling at recall thresholds, for every IoU threshold.

    ``q[t, r] = pr[t, i]`` and ``s[t, r] = sc[i]`` with ``i`` the first index where
    ``rc[t, i] >= rec_thrs[r]`` (numpy's left ``searchsorted``), 0 where there is none.
    """
    T, nd = rc.shape
    # row by row: shifting rows apart to search them at once would round the recalls
    i = np.stack([np.searchsorted(rc[t], rec_thrs, side="left") for t in range(T)])
    inside = i < nd
    ic = np.minimum(i, nd - 1)
    q = np.where(inside, np.take_along_axis(pr, ic, axis=1), 0.0)
    s = np.where(inside, sc[ic], 0.0)
    return q, s
