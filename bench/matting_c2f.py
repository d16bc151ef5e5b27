"""Coarse-to-fine matting against full-resolution closed-form matting at 1080p and 4K.

alphamatting.com ships its high-resolution training set separately and ``../shared/data``
holds only the low-resolution one, so each image (with its trimap and ground truth) is
upscaled to a long side of 1920 px (1080p class) and 3840 px (4K): bicubic image, nearest
trimap, bilinear alpha — synthetic high resolution, said as such in the results. Without the
data, synthetic composites are used.

Reported per image and size: SAD (/1000, unknown region) against the upscaled ground truth and
time for coarse-to-fine (default scale and ``--refine``) and for the full-resolution solve;
their ratios; the peak memory of the process while only coarse-to-fine has run.

    python bench/matting_c2f.py [--limit 8] [--full-limit-4k 3] [--refine 0.2]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report
from matting import _samples

SIDES = {"1080p": 1920, "4K": 3840}


def _upscale(image, tri, gt, side: int):
    import cv2

    s = side / max(image.shape[:2])
    size = (round(image.shape[1] * s), round(image.shape[0] * s))
    return (cv2.resize(image, size, interpolation=cv2.INTER_CUBIC),
            cv2.resize(tri, size, interpolation=cv2.INTER_NEAREST),
            np.clip(cv2.resize(gt.astype(np.float32), size,
                               interpolation=cv2.INTER_LINEAR), 0, 1).astype(np.float64))


def main() -> None:
    from masklab.matting import closed_form_alpha, coarse_to_fine_alpha
    from masklab.metrics.matting import sad

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--full-limit-4k", type=int, default=3,
                    help="images that also get the (slow) full-resolution solve at 4K")
    ap.add_argument("--refine", type=float, default=0.2)
    args = ap.parse_args()
    samples = list(_samples(args.limit))
    rows = []
    for label, side in SIDES.items():  # coarse-to-fine first: its peak memory alone
        for name, image, tri, gt in samples:
            img, t, g = _upscale(image, tri, gt, side)
            start = time.perf_counter()
            alpha, info = coarse_to_fine_alpha(img, t, refine=args.refine, return_info=True)
            rows.append({"size": label, "image": name, "pixels": img.shape[0] * img.shape[1],
                         "unknown px": int(((t > 0) & (t < 255)).sum()),
                         "c2f s": time.perf_counter() - start, "c2f SAD": sad(alpha, g, t),
                         "refined": info["refined"]})
            print(rows[-1], flush=True)
    peak_c2f = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    for row in rows:
        if row["size"] == "4K" and \
                [r["image"] for r in rows if r["size"] == "4K"].index(row["image"]) \
                >= args.full_limit_4k:
            row.update({"full s": float("nan"), "full SAD": float("nan")})
            continue
        name, image, tri, gt = next(s for s in samples if s[0] == row["image"])
        img, t, g = _upscale(image, tri, gt, SIDES[row["size"]])
        start = time.perf_counter()
        alpha = closed_form_alpha(img, t)
        row.update({"full s": time.perf_counter() - start, "full SAD": sad(alpha, g, t)})
        print(row, flush=True)
    for r in rows:
        r["speed-up"] = r["full s"] / r["c2f s"]
        r["SAD ratio"] = r["c2f SAD"] / r["full SAD"]
    meta = {"data": "alphamatting.com training lowres, Trimap1, upscaled" if
            samples[0][0].startswith("GT") else "synthetic, upscaled",
            "refine": args.refine, "peak RSS GiB (coarse-to-fine only)": peak_c2f}
    for label in SIDES:
        done = [r for r in rows if r["size"] == label and np.isfinite(r["full s"])]
        if done:
            c2f, full = sum(r["c2f s"] for r in done), sum(r["full s"] for r in done)
            meta[f"{label} speed-up (total time, {len(done)} images)"] = full / c2f
            meta[f"{label} SAD ratio (total)"] = (sum(r["c2f SAD"] for r in done)
                                                  / sum(r["full SAD"] for r in done))
    report("matting_c2f", rows, meta)
    for k, v in meta.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")


if __name__ == "__main__":
    main()
