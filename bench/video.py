"""Video object segmentation with the ``flow`` backend (no weights): J&F on the four shared
DAVIS-2016 sequences (semi-supervised: the first frame's mask is the prompt; J and F over
frames 1..T-2 with masklab's DAVIS evaluator), frames/s, and resident memory after 200 and
after 2,000 frames of a synthetic 854x480 clip (frames made on demand, never held).

Unsupervised rows: ``VideoSession.discover`` (no prompt; up to 20 proposals), scored with
DAVIS's unsupervised protocol (proposals matched to objects by the Hungarian method).

Usage: python bench/video.py [--long 2000] [--refine colour|grabcut|none]
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

from masklab.io.images import read_label_png
from masklab.metrics.video import DavisEvaluator
from masklab.video import VideoSession

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"


class SyntheticClip:
    """An 854x480 clip of a textured background with a disc moving on a loop; frame t is
    made when asked for."""

    def __init__(self, n: int):
        self.n = n
        rng = np.random.default_rng(0)
        self.bg = rng.integers(0, 120, (480, 854, 3), dtype=np.uint8)
        self.yy, self.xx = np.mgrid[:480, :854]

    def __len__(self) -> int:
        return self.n

    def mask(self, t: int) -> np.ndarray:
        cx = 427 + 250 * np.sin(t / 40)
        cy = 240 + 120 * np.cos(t / 55)
        return (self.xx - cx) ** 2 + (self.yy - cy) ** 2 < 60 ** 2

    def __getitem__(self, t: int) -> np.ndarray:
        f = self.bg.copy()
        f[self.mask(t)] = (230, 180, 40)
        return f


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", type=int, default=2000)
    ap.add_argument("--refine", default="colour")
    args = ap.parse_args()
    rows = []
    if (DAVIS / "JPEGImages").is_dir():
        ev = DavisEvaluator("semi-supervised")
        total_frames, total_s = 0, 0.0
        for seq in sorted(p.name for p in (DAVIS / "JPEGImages" / "480p").iterdir()):
            gt = np.stack([(read_label_png(p) > 0).astype(np.uint8) for p in
                           sorted((DAVIS / "Annotations" / "480p" / seq).glob("*.png"))])
            s = VideoSession(DAVIS / "JPEGImages" / "480p" / seq, refine=args.refine)
            s.add_prompt(0, 1, mask=gt[0] > 0)
            t0 = time.perf_counter()
            res = np.stack([m.to_dense()[0] if len(m) else np.zeros(gt.shape[1:], bool)
                            for _, m in s.propagate()]).astype(np.uint8)
            dt = time.perf_counter() - t0
            one = DavisEvaluator("semi-supervised").update(seq, gt, res[1:-1]).compute()
            ev.update(seq, gt, res[1:-1])
            total_frames, total_s = total_frames + len(gt), total_s + dt
            rows.append({"sequence": seq, "J": one.global_["J-Mean"],
                         "F": one.global_["F-Mean"], "J&F": one.global_["J&F-Mean"],
                         "frames_per_s": len(gt) / dt})
        g = ev.compute().global_
        rows.append({"sequence": "mean", "J": g["J-Mean"], "F": g["F-Mean"],
                     "J&F": g["J&F-Mean"], "frames_per_s": total_frames / total_s})
        unsup = DavisEvaluator("unsupervised")
        for seq in sorted(p.name for p in (DAVIS / "JPEGImages" / "480p").iterdir()):
            gt = np.stack([(read_label_png(p) > 0).astype(np.uint8) for p in
                           sorted((DAVIS / "Annotations" / "480p" / seq).glob("*.png"))])
            s = VideoSession(DAVIS / "JPEGImages" / "480p" / seq, refine=args.refine)
            t0 = time.perf_counter()
            s.discover(max_objects=20)
            res = np.zeros_like(gt)
            for t, m in s.propagate():
                for k, d in zip(m.labels, m.to_dense(), strict=True):
                    res[t][d] = k
            dt = time.perf_counter() - t0
            one = DavisEvaluator("unsupervised").update(seq, gt, res).compute().global_
            unsup.update(seq, gt, res)
            rows.append({"sequence": f"unsupervised {seq} ({len(s.objects)} found)",
                         "J": one["J-Mean"], "F": one["F-Mean"], "J&F": one["J&F-Mean"],
                         "frames_per_s": len(gt) / dt})
        g = unsup.compute().global_
        rows.append({"sequence": "unsupervised mean", "J": g["J-Mean"], "F": g["F-Mean"],
                     "J&F": g["J&F-Mean"], "frames_per_s": float("nan")})
    else:
        print(f"DAVIS-2016 not found at {DAVIS}; accuracy skipped")
    clip = SyntheticClip(args.long)
    s = VideoSession(clip, refine=args.refine, cache=8)
    s.add_prompt(0, 1, mask=clip.mask(0))
    at, ious = {}, []
    t0 = time.perf_counter()
    for t, m in s.propagate():
        if t % 50 == 0:
            p = m.to_dense()[0]
            g = clip.mask(t)
            ious.append((p & g).sum() / max(1, (p | g).sum()))
        if t + 1 in (200, args.long):
            at[t + 1] = rss_mb()
    dt = time.perf_counter() - t0
    rows.append({"sequence": f"synthetic {args.long} frames", "J": float(np.mean(ious)),
                 "F": float("nan"), "J&F": float("nan"), "frames_per_s": args.long / dt})
    report("video", rows, {"backend": "flow", "refine": args.refine,
                           "rss_mb_after_200": at.get(200),
                           f"rss_mb_after_{args.long}": at.get(args.long),
                           "rss_growth": at[args.long] / at[200] - 1 if 200 in at else None})
    print(f"resident memory: {at.get(200, float('nan')):.0f} MB after 200 frames, "
          f"{at[args.long]:.0f} MB after {args.long}")


if __name__ == "__main__":
    main()
