"""The sequential parts of COCO evaluation, compiled with numba (for large evaluations; the
numpy twins in ``_coco_match`` serve small ones without numba's start-up).

``match_groups`` is pycocotools' ``COCOeval.evaluateImg`` greedy matching, run for every
(image, category) group, area range and IoU threshold in one compiled loop. Its branches and
comparisons are those of the reference, so ties and crowd regions resolve identically.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def match_groups(gd_start, gd_count, gg_start, gg_count, pair_start, ious, g_area, g_ignore,
                 g_crowd, g_id, d_area, area_rngs, iou_thrs):
    """Greedy matching for all groups.

    Groups list their detections (``gd_start``/``gd_count``, already sorted by score and cut
    at maxDets) and ground truths (``gg_start``/``gg_count``, in file order). ``ious`` holds
    each group's ``D × G`` block row-major from ``pair_start``. Returns ``dt_match`` (A, T, N)
    with the matched ground truth's id (0: none) and ``dt_ignore`` (A, T, N).
    """
    n_areas = area_rngs.shape[0]
    n_thrs = iou_thrs.shape[0]
    n_dt = d_area.shape[0]
    dt_match = np.zeros((n_areas, n_thrs, n_dt), np.int64)
    dt_ignore = np.zeros((n_areas, n_thrs, n_dt), np.bool_)
    for grp in range(gd_start.shape[0]):
        D = gd_count[grp]
        G = gg_count[grp]
        if D == 0:
            continue
        d0 = gd_start[grp]
        g0 = gg_start[grp]
        p0 = pair_start[grp]
        order = np.empty(G, np.int64)
        ig_sorted = np.empty(G, np.bool_)
        gt_taken = np.zeros(G, np.bool_)
        for a in range(n_areas):
            lo = area_rngs[a, 0]
            hi = area_rngs[a, 1]
            # ground truths that are ignored for this area range go last (stable)
            k = 0
            for j in range(G):
                ar = g_area[g0 + j]
                if not (g_ignore[g0 + j] or ar < lo or ar > hi):
                    order[k] = j
                    ig_sorted[k] = False
                    k += 1
            for j in range(G):
                ar = g_area[g0 + j]
                if g_ignore[g0 + j] or ar < lo or ar > hi:
                    order[k] = j
                    ig_sorted[k] = True
                    k += 1
            for t in range(n_thrs):
                gt_taken[:] = False
                thr = min(iou_thrs[t], 1 - 1e-10)
                for di in range(D):
                    best = thr
                    m = -1
                    for gp in range(G):
                        gj = order[gp]
                        if gt_taken[gp] and not g_crowd[g0 + gj]:
                            continue
                        if m > -1 and not ig_sorted[m] and ig_sorted[gp]:
                            break
                        v = ious[p0 + di * G + gj]
                        if v < best:
                            continue
                        best = v
                        m = gp
                    if m == -1:
                        continue
                    dt_ignore[a, t, d0 + di] = ig_sorted[m]
                    dt_match[a, t, d0 + di] = g_id[g0 + order[m]]
                    gt_taken[m] = True
            for di in range(D):
                ar = d_area[d0 + di]
                if ar < lo or ar > hi:
                    for t in range(n_thrs):
                        if dt_match[a, t, d0 + di] == 0:
                            dt_ignore[a, t, d0 + di] = True
    return dt_match, dt_ignore


@numba.njit(cache=True, nogil=True)
def sample_precision(rc, pr, sc, rec_thrs):
    """``COCOeval.accumulate``'s sampling at recall thresholds, for every IoU threshold.

    ``q[t, r] = pr[t, i]`` and ``s[t, r] = sc[i]`` with ``i`` the first index where
    ``rc[t, i] >= rec_thrs[r]`` (numpy's left ``searchsorted``), 0 where there is none.
    """
    T, nd = rc.shape
    R = rec_thrs.shape[0]
    q = np.zeros((T, R))
    s = np.zeros((T, R))
    for t in range(T):
        i = 0
        for r in range(R):
            thr = rec_thrs[r]
            while i < nd and rc[t, i] < thr:
                i += 1
            if i == nd:
                break
            q[t, r] = pr[t, i]
            s[t, r] = sc[i]
    return q, s
