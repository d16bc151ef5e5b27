"""How the ``flow`` backend's design was chosen: leave one sequence out on the shared
DAVIS-2016 sequences.

Each candidate (a set of ``FlowTracker`` options) tracks every sequence from its first
frame's mask (J over frames 1..T-2, masklab's DAVIS evaluator). For each sequence held out,
the candidate with the best mean J on the other sequences is chosen and scored on the held-out
one; the mean of those scores estimates J on sequences the choice never saw. The default of
``FlowOptions`` is the candidate best on all of them.

Usage: python bench/video_flow_loo.py [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016"
CANDIDATES = {  # name -> FlowTracker options: the steps that were added, then a grid
    "before (480 px flow, flow + colour)": {"consistency": False, "max_side": 480,
                                            "motion_weight": 0.0},
    "+ forward-backward check": {"consistency": True, "max_side": 480, "motion_weight": 0.0},
    "+ full-size flow": {"consistency": True, "max_side": 854, "motion_weight": 0.0},
    **{f"+ motion cue {w}, cap {cap:g}": {"consistency": True, "max_side": 854,
                                          "motion_weight": w, "motion_max": cap}
       for w in (0.25, 0.5, 0.75) for cap in (1.0, 5.0)},
}


def run(seq: str, options: dict) -> tuple[float, float]:
    import cv2

    cv2.setNumThreads(1)  # one sequence per core
    from masklab.io.images import read_label_png
    from masklab.metrics.video import DavisEvaluator
    from masklab.video import VideoSession

    gt = np.stack([(read_label_png(p) > 0).astype(np.uint8) for p in
                   sorted((DAVIS / "Annotations" / "480p" / seq).glob("*.png"))])
    s = VideoSession(DAVIS / "JPEGImages" / "480p" / seq, **options)
    s.add_prompt(0, 1, mask=gt[0] > 0)
    t = time.perf_counter()
    res = np.stack([m.to_dense()[0] if len(m) else np.zeros(gt.shape[1:], bool)
                    for _, m in s.propagate()]).astype(np.uint8)
    fps = len(gt) / (time.perf_counter() - t)
    j = DavisEvaluator("semi-supervised").update(seq, gt, res[1:-1]).compute().global_
    return float(j["J-Mean"]), fps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if not (DAVIS / "JPEGImages").is_dir():
        print(f"DAVIS-2016 not found at {DAVIS}; nothing to measure")
        return
    seqs = sorted(p.name for p in (DAVIS / "JPEGImages" / "480p").iterdir())
    jobs = [(name, seq) for name in CANDIDATES for seq in seqs]
    with ProcessPoolExecutor(args.workers) as ex:
        out = list(ex.map(run, [s for _, s in jobs], [CANDIDATES[n] for n, _ in jobs]))
    J = {name: {} for name in CANDIDATES}
    for (name, seq), (j, _) in zip(jobs, out, strict=True):
        J[name][seq] = j
    rows = [{"candidate": name, **{s[:10]: J[name][s] for s in seqs},
             "mean_J": float(np.mean(list(J[name].values())))} for name in CANDIDATES]
    held = []
    for s in seqs:
        best = max(CANDIDATES, key=lambda n: np.mean([J[n][q] for q in seqs if q != s]))
        held.append({"held_out": s, "chosen": best, "J": J[best][s]})
    loo = float(np.mean([h["J"] for h in held]))
    rows.append({"candidate": "leave-one-sequence-out", **{s[:10]: h["J"] for s, h in
                                                            zip(seqs, held, strict=True)},
                 "mean_J": loo})
    report("video_flow_loo", rows, {"sequences": seqs, "candidates": CANDIDATES,
                                    "held_out": held, "loo_mean_J": loo})
    print(json.dumps(held, indent=1))


if __name__ == "__main__":
    main()
