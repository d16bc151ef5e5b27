"""PQ and J&F: masklab against transcriptions of the official algorithms (bench/_reference.py)
on scaled-up synthetic sets, checking identical figures.

PQ: 100 images of 480x640 with ~40 segments (things and stuff, crowd and void regions), from
decoded PNG colours (both sides turn them into ids: panopticapi's ``rgb2id``, ours fused).
J&F: 10 sequences of 40 frames at 480x854 with 3 moving objects (semi-supervised).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _reference as ref
from _common import report

from masklab.io.panoptic import id2rgb
from masklab.metrics.panoptic import PanopticEvaluator
from masklab.metrics.video import DavisEvaluator


def panoptic_set(n, seed=0, h=480, w=640):
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"c{c}", "isthing": int(c <= 10)} for c in range(1, 21)]
    out = []
    for _ in range(n):
        # Voronoi-like segments from random seeds, then jitter for the prediction
        k = 40
        seeds = rng.uniform(0, [h, w], (k, 2))
        yy, xx = np.mgrid[0:h:4, 0:w:4]
        d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
        lab = np.argmin(d, axis=-1)
        lab = np.kron(lab, np.ones((4, 4), int))[:h, :w]
        ids = rng.choice(np.arange(1, 5000), k, replace=False)
        gt = ids[lab]
        gt[rng.random((h, w)) < 0.02] = 0
        gt[:20] = 0
        cat = rng.integers(1, 21, k)
        gt_segs = [{"id": int(i), "category_id": int(c), "iscrowd": int(rng.random() < 0.05),
                    "area": int((gt == i).sum())} for i, c in zip(ids, cat, strict=True)]
        seeds2 = seeds + rng.normal(0, 12, seeds.shape)
        d = (yy[..., None] - seeds2[:, 0]) ** 2 + (xx[..., None] - seeds2[:, 1]) ** 2
        lab2 = np.kron(np.argmin(d, axis=-1), np.ones((4, 4), int))[:h, :w]
        pids = ids + 7
        pred = pids[lab2]
        pcat = np.where(rng.random(k) < 0.8, cat, rng.integers(1, 21, k))
        pred_segs = [{"id": int(i), "category_id": int(c)} for i, c in zip(pids, pcat,
                                                                        strict=True)]
        # decoded PNG colours: both sides start from what a PNG reader returns
        out.append((id2rgb(gt), gt_segs, id2rgb(pred), pred_segs))
    return cats, out


def davis_set(n_seq, frames=40, seed=0, h=480, w=854):
    rng = np.random.default_rng(seed)
    out = []
    yy, xx = np.mgrid[:h, :w]
    for _ in range(n_seq):
        gt = np.zeros((frames, h, w), np.uint8)
        res = np.zeros((frames, h, w), np.uint8)
        for obj in range(1, 4):
            c = rng.uniform([100, 100], [h - 100, w - 100])
            v = rng.normal(0, 3, 2)
            r = rng.uniform(30, 80)
            for t in range(frames):
                p = c + v * t
                gt[t][(yy - p[0]) ** 2 + (xx - p[1]) ** 2 < r ** 2] = obj
                q = p + rng.normal(0, 4, 2)
                res[t][(yy - q[0]) ** 2 + ((xx - q[1]) * 1.1) ** 2 < (r * 0.95) ** 2] = obj
        out.append((gt, res[1:-1]))
    return out


def main() -> None:
    rows = []
    cats, images = panoptic_set(100)
    t = time.perf_counter()
    stats = ref.pq_stats()
    for gt, gs, pred, ps in images:
        ref.pq_single_image(ref.rgb2id(gt), gs, ref.rgb2id(pred), ps, cats, stats)
    t_ref = time.perf_counter() - t
    PanopticEvaluator(cats).update(*images[0][:4])  # load the compiled kernel
    t = time.perf_counter()
    ev = PanopticEvaluator(cats)
    for gt, gs, pred, ps in images:
        ev.update(gt, gs, pred, ps)
    t_ours = time.perf_counter() - t
    same = all(abs(ev.stats[c].iou - stats[c].iou) < 1e-9 and
               (ev.stats[c].tp, ev.stats[c].fp, ev.stats[c].fn) ==
               (stats[c].tp, stats[c].fp, stats[c].fn) for c in ev.stats)
    rows.append({"metric": "PQ", "items": "100 images 480x640", "masklab_s": t_ours,
                 "reference_s": t_ref, "speedup": t_ref / t_ours, "identical": same})

    seqs = davis_set(10)
    t = time.perf_counter()
    ref_jf = [ref.davis_sequence(g, r) for g, r in seqs]
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    ev = DavisEvaluator()
    for i, (g, r) in enumerate(seqs):
        ev.update(f"s{i}", g, r)
    t_ours = time.perf_counter() - t
    ours = [ev.objects[f"s{i}_{k + 1}"] for i in range(len(seqs)) for k in range(3)]
    theirs = [(j[k], f[k]) for j, f in ref_jf for k in range(3)]
    same = all(np.allclose(a[0], b[0], atol=1e-12) and np.allclose(a[1], b[1], atol=1e-12)
               for a, b in zip(ours, theirs, strict=True))
    rows.append({"metric": "J&F", "items": "10 seq x 40 frames 480x854", "masklab_s": t_ours,
                 "reference_s": t_ref, "speedup": t_ref / t_ours, "identical": same})
    report("pq_jf", rows, {})


if __name__ == "__main__":
    main()
