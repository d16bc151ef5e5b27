"""RLE codec: masklab against pycocotools on realistic instance masks.

Blob masks (ellipses) at 480x640, the shape of COCO instance masks. Checks identical output,
then times encode (dense → compressed RLE), decode, area and bbox.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as pm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, report

from masklab import Masks, rle


def blobs(n: int, h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, 150)), int(rng.integers(5, 120)))
        cv2.ellipse(out[i], c, axes, int(rng.integers(0, 180)), 0, 360, 1, -1)
    return out.astype(bool)


def main() -> None:
    n = 200
    dense = blobs(n)
    fortran = np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8))
    ref = pm.encode(fortran)
    ours = Masks(dense).to_rle()
    assert [r["counts"].encode() for r in ours] == [r["counts"] for r in ref]
    from_rle = Masks.from_rle(ours)
    assert (from_rle.to_dense() == dense).all()
    assert (from_rle.area == pm.area(ref)).all()
    assert np.array_equal(from_rle.boxes.xywh, pm.toBbox(ref))

    rows = []
    cases = [
        ("encode", lambda: Masks(dense).to_rle(), lambda: pm.encode(
            np.asfortranarray(dense.transpose(1, 2, 0).astype(np.uint8)))),
        ("decode", lambda: rle.decode(ours), lambda: pm.decode(ref)),
        ("area", lambda: Masks.from_rle(ours).area, lambda: pm.area(ref)),
        ("bbox", lambda: Masks.from_rle(ours).boxes, lambda: pm.toBbox(ref)),
    ]
    for name, mine, theirs in cases:
        t_ours, t_ref = best_of(mine), best_of(theirs)
        rows.append({"op": name, "masks": n, "masklab_ms": 1000 * t_ours,
                     "pycocotools_ms": 1000 * t_ref, "speedup": t_ref / t_ours})
    report("rle", rows, {"size": "480x640", "identical": True})


if __name__ == "__main__":
    main()
