"""Matting quality and speed: masklab's closed-form and KNN solvers and foreground estimation
against pymatting's implementations of the same methods, in one run, on alphamatting.com's
training images (low resolution, ``Trimap1``) from ``../shared/data/matting`` — else on synthetic
composites with a known alpha.

Reported per image: SAD, MSE, gradient and connectivity errors (the eval engine's, unknown
region) against the ground truth for both, their maximum difference, and the time of each.
Foreground estimation: time of both.

    python bench/matting.py [--limit 27]
    python bench/matting.py --knn --limit 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "matting"


def _samples(limit: int):
    from masklab.io.images import read_image

    if (DATA / "input_training_lowres").is_dir():
        for f in sorted((DATA / "input_training_lowres").glob("*.png"))[:limit]:
            yield (f.stem, read_image(f),
                   read_image(DATA / "trimap_training_lowres" / "Trimap1" / f.name,
                              mode="gray"),
                   read_image(DATA / "gt_training_lowres" / f.name, mode="gray") / 255.0)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from masklab.matting import trimap_from_mask
    from tests.matting.test_matting import synthetic

    for i in range(min(limit, 5)):
        image, alpha, _, _ = synthetic(240, 320, textured=True, seed=i)
        yield (f"synthetic{i}", np.round(image * 255).astype(np.uint8),
               trimap_from_mask(alpha > 0.5, 16), alpha)


def _timed(fn, *args):
    """``(fn(*args), seconds)``."""
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    import pymatting

    from masklab.matting import closed_form_alpha, estimate_foreground, knn_alpha
    from masklab.metrics.matting import connectivity_error, gradient_error, mse, sad

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=27)
    ap.add_argument("--knn", action="store_true",
                    help="also KNN matting (slow on both sides); writes matting_knn.json")
    args = ap.parse_args()
    rows = []
    warm = np.zeros((8, 8, 3))
    estimate_foreground(warm, np.zeros((8, 8)))
    pymatting.estimate_foreground_ml(warm, np.zeros((8, 8)))
    for name, image, tri, gt in _samples(args.limit):
        ours, t_ours = _timed(closed_form_alpha, image, tri)
        ref, t_ref = _timed(pymatting.estimate_alpha_cf, image / 255.0, tri / 255.0)
        _, f_ours = _timed(estimate_foreground, image, ours)
        _, f_ref = _timed(pymatting.estimate_foreground_ml, image / 255.0, ours)
        knn = {}
        if args.knn:
            k_ours, tk_ours = _timed(knn_alpha, image, tri)
            k_ref, tk_ref = _timed(pymatting.estimate_alpha_knn, image / 255.0, tri / 255.0)
            knn = {"knn SAD masklab": sad(k_ours, gt, tri),
                   "knn SAD pymatting": sad(k_ref, gt, tri),
                   "knn max |diff|": float(np.abs(k_ours - k_ref).max()),
                   "knn s masklab": tk_ours, "knn s pymatting": tk_ref}
        rows.append({"image": name, "unknown px": int(((tri > 0) & (tri < 255)).sum()),
                     "SAD masklab": sad(ours, gt, tri), "SAD pymatting": sad(ref, gt, tri),
                     "MSE masklab": mse(ours, gt, tri), "MSE pymatting": mse(ref, gt, tri),
                     "Grad masklab": gradient_error(ours, gt, tri),
                     "Grad pymatting": gradient_error(ref, gt, tri),
                     "Conn masklab": connectivity_error(ours, gt, tri),
                     "Conn pymatting": connectivity_error(ref, gt, tri),
                     "max |diff|": float(np.abs(ours - ref).max()),
                     "cf s masklab": t_ours, "cf s pymatting": t_ref, **knn,
                     "fg s masklab": f_ours, "fg s pymatting": f_ref})
        print(rows[-1], flush=True)
    total = {k: float(np.sum([r[k] for r in rows])) for k in rows[0] if k != "image"}
    total["image"] = "all"
    for k in ("max |diff|", "knn max |diff|"):
        if k in total:
            total[k] = float(np.max([r[k] for r in rows]))
    rows.append(total)
    ratios = {"knn speed ratio": total["knn s pymatting"] / total["knn s masklab"]} \
        if args.knn else {}
    meta = {"data": "alphamatting.com training lowres, Trimap1" if DATA.is_dir()
            else "synthetic", "images": len(rows) - 1,
            "cf speed ratio (pymatting / masklab)":
                total["cf s pymatting"] / total["cf s masklab"],
            "fg speed ratio": total["fg s pymatting"] / total["fg s masklab"], **ratios}
    report("matting_knn" if args.knn else "matting", rows, meta)


if __name__ == "__main__":
    main()
