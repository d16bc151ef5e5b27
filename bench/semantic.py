"""Semantic confusion matrix throughput: masklab against the usual numpy ``bincount`` (as in
MMSegmentation's ``intersect_and_union``) and ``torch.bincount``, checking identical counts.

2,000 label maps of 512x512 (19 classes + ignore 255): 524 M label pixels per method.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

from masklab.metrics.semantic import SemanticEvaluator

C = 19


def numpy_bincount(gt, pred):
    valid = gt != 255
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    return np.bincount(g * C + p, minlength=C * C).reshape(C, C)


def torch_bincount(gt, pred):
    g = torch.from_numpy(gt)
    p = torch.from_numpy(pred)
    valid = g != 255
    idx = g[valid].long() * C + p[valid].long()
    return torch.bincount(idx, minlength=C * C).reshape(C, C).numpy()


def main() -> None:
    rng = np.random.default_rng(0)
    pool = 100  # distinct maps, cycled 20 times (2,000 maps) to bound memory
    gts = rng.integers(0, C, (pool, 512, 512)).astype(np.uint8)
    gts[:, :32] = 255
    preds = np.where(rng.random(gts.shape) < 0.7, gts, rng.integers(0, C, gts.shape)
                     ).astype(np.uint8)
    preds[preds == 255] = 0
    n_maps = 2000
    pixels = n_maps * 512 * 512
    SemanticEvaluator(C).update(gts[0], preds[0])  # load the compiled kernel
    torch.set_num_threads(2)
    rows, results = [], {}
    for name, fn in (("masklab", None), ("numpy bincount", numpy_bincount),
                     ("torch bincount", torch_bincount)):
        t = time.perf_counter()
        if fn is None:
            ev = SemanticEvaluator(C)
            for i in range(n_maps):
                ev.update(gts[i % pool], preds[i % pool])
            total = ev.confusion[:, :C]
        else:
            total = np.zeros((C, C), np.int64)
            for i in range(n_maps):
                total += fn(gts[i % pool], preds[i % pool])
        dt = time.perf_counter() - t
        results[name] = total
        rows.append({"method": name, "seconds": dt, "Gpixels_per_s": pixels / dt / 1e9})
    same = all(np.array_equal(results["masklab"], v) for v in results.values())
    for r in rows:
        r["masklab_speedup"] = r["seconds"] / rows[0]["seconds"]
        r["identical"] = same
    report("semantic", rows, {"maps": n_maps, "size": "512x512", "classes": C})


if __name__ == "__main__":
    main()
