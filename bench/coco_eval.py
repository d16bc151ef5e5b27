"""COCO evaluation speed: masklab vs pycocotools vs faster-coco-eval, identical stats checked.

A seeded synthetic set: 5,000 images of 480x640, 80 categories, ~7 ground-truth objects and
~20 detections per image, polygon masks (detections: jittered copies of ground-truth polygons
plus false positives). Segmentation is timed three ways: detections as polygons with boxes,
as compressed RLE with boxes (Detectron2 / MMDetection files), and as compressed RLE without
boxes (cocoapi's own example results; areas then come from the masks).

End to end (`--cli`): what a user runs, timed from the files: `masklab eval coco GT PRED` as a
process (interpreter start, imports, JSON loading, validation, evaluation, printing) against
the equivalent pycocotools and faster-coco-eval scripts, on 400 and 3,000 images (best of 3),
with the 12 stats checked equal.
Usage: python bench/coco_eval.py [--images N] [--cli 400,3000] [--skip-in-process]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

from masklab.metrics import coco_evaluate


def polygon(rng, cx, cy, r):
    k = int(rng.integers(4, 12))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(0.6, 1.0, k)
    return np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)


def make(n_images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    cats = [{"id": i + 1, "name": f"c{i}"} for i in range(80)]
    images, anns, results = [], [], []

    def record(pts):
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        return [pts.reshape(-1).tolist()], [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]

    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": h, "width": w})
        for _ in range(int(rng.poisson(7))):
            r = float(rng.choice([8, 25, 80]) * rng.uniform(0.5, 1.5))
            pts = polygon(rng, rng.uniform(r, w - r), rng.uniform(r, h - r), r)
            cat = int(rng.integers(1, 81))
            seg, box = record(pts)
            x = np.asarray(seg[0])
            area = 0.5 * abs(np.dot(x[0::2], np.roll(x[1::2], 1)) -
                             np.dot(x[1::2], np.roll(x[0::2], 1)))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat,
                         "segmentation": seg, "bbox": box, "area": float(area), "iscrowd": 0})
            for _ in range(int(rng.integers(1, 3))):
                jit = pts + rng.normal(0, r * 0.1, pts.shape) + rng.normal(0, r * 0.15, 2)
                seg, box = record(jit)
                results.append({"image_id": i + 1, "category_id": cat, "segmentation": seg,
                                "bbox": box, "score": float(rng.random())})
        while len(results) < 20 * (i + 1):
            r = float(rng.choice([8, 25, 80]) * rng.uniform(0.5, 1.5))
            seg, box = record(polygon(rng, rng.uniform(r, w - r), rng.uniform(r, h - r), r))
            results.append({"image_id": i + 1, "category_id": int(rng.integers(1, 81)),
                            "segmentation": seg, "bbox": box, "score": float(rng.random())})
    return {"images": images, "annotations": anns, "categories": cats}, results


def as_rle(gt, results, keep_bbox: bool):
    """The detections' polygons as compressed RLE strings (what detectors write)."""
    from pycocotools import mask as coco_mask

    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    out = []
    for r in results:
        h, w = sizes[r["image_id"]]
        rle = coco_mask.merge(coco_mask.frPyObjects(r["segmentation"], h, w))
        d = {k: v for k, v in r.items() if k != "segmentation" and (keep_bbox or k != "bbox")}
        d["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        out.append(d)
    return out


def run_pycocotools(gt, results, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        cg = COCO()
        cg.dataset = gt
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t, ev.stats


def run_faster(gt, results, iou_type):
    import faster_coco_eval as fce

    gt, results = copy.deepcopy(gt), copy.deepcopy(results)
    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        cg = fce.COCO(gt)
        ev = fce.COCOeval_faster(cg, cg.loadRes(results), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return time.perf_counter() - t, np.asarray(ev.stats[:12])


def run_masklab(gt, results, iou_type):
    t = time.perf_counter()
    r = coco_evaluate(gt, results, iou_type)
    return time.perf_counter() - t, r.stats


_PEER = """import json, sys
from {mod} import COCO, {ev}
gt = COCO(sys.argv[1])
ev = {ev}(gt, gt.loadRes(sys.argv[2]), sys.argv[3])
ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(v) for v in ev.stats[:12]], open(sys.argv[4], "w"))
"""


def _timed(cmd: list[str], repeat: int = 3) -> float:
    import subprocess

    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t)
    return best


def cli_rows(sizes: list[int]) -> list[dict]:
    """``masklab eval coco`` from files, as a process, against the peers' scripts."""
    import json
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        peers = {"pycocotools": _PEER.format(mod="pycocotools.coco", ev="COCOeval")
                 .replace("from pycocotools.coco import COCO, COCOeval",
                          "from pycocotools.coco import COCO\n"
                          "from pycocotools.cocoeval import COCOeval"),
                 "faster_coco_eval": _PEER.format(mod="faster_coco_eval",
                                                  ev="COCOeval_faster")}
        for name, code in peers.items():
            (tmp / f"run_{name}.py").write_text(code)
        for n in sizes:
            gt, results = make(n, seed=7)
            files = {"gt": tmp / f"gt{n}.json", "polygons": tmp / f"poly{n}.json",
                     "RLE": tmp / f"rle{n}.json"}
            files["gt"].write_text(json.dumps(gt))
            files["polygons"].write_text(json.dumps(results))
            files["RLE"].write_text(json.dumps(as_rle(gt, results, keep_bbox=True)))
            for iou_type, det in (("bbox", "polygons"), ("segm", "polygons"), ("segm", "RLE")):
                gt_f, dt_f = str(files["gt"]), str(files[det])
                out = tmp / "masklab.json"
                t_ml = _timed([sys.executable, "-m", "masklab.cli", "eval", "coco", gt_f, dt_f,
                               "--iou-type", iou_type, "--json", str(out)])
                stats = {"masklab": np.asarray(json.loads(out.read_text())["stats"])}
                times = {}
                for peer in peers:
                    o = tmp / f"{peer}.json"
                    times[peer] = _timed([sys.executable, str(tmp / f"run_{peer}.py"), gt_f, dt_f,
                                          iou_type, str(o)])
                    stats[peer] = np.asarray(json.loads(o.read_text()))
                rows.append({"images": n, "detections": f"{iou_type} {det}",
                             "masklab_cli_s": t_ml, "pycocotools_s": times["pycocotools"],
                             "faster_coco_eval_s": times["faster_coco_eval"],
                             "vs_pycocotools": times["pycocotools"] / t_ml,
                             "vs_faster_coco_eval": times["faster_coco_eval"] / t_ml,
                             "max_abs_diff_pycocotools": float(np.abs(
                                 stats["masklab"] - stats["pycocotools"]).max())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--cli", default="400,3000",
                    help="image counts for the end-to-end CLI timing ('' to skip)")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args()
    if args.cli:
        sizes = [int(v) for v in args.cli.split(",")]
        report("coco_eval_cli", cli_rows(sizes), {"sizes": sizes, "repeat": "best of 3",
                                                  "what": "process from files, as run"})
    if args.skip_in_process:
        return
    t = time.perf_counter()
    gt, results = make(args.images)
    print(f"{args.images} images, {len(gt['annotations'])} ground truth, {len(results)} "
          f"detections (made in {time.perf_counter() - t:.1f}s)")
    small_gt, small_res = make(5, seed=1)
    coco_evaluate(small_gt, small_res, "segm")  # warm imports (and caches) before timing
    rows = []
    variants = [("bbox", "bbox", results), ("segm", "segm polygons+bbox", results),
                ("segm", "segm RLE+bbox", as_rle(gt, results, keep_bbox=True)),
                ("segm", "segm RLE, no bbox", as_rle(gt, results, keep_bbox=False))]
    for iou_type, name, res in variants:
        t_ml, s_ml = run_masklab(gt, res, iou_type)
        t_pc, s_pc = run_pycocotools(gt, res, iou_type)
        t_fc, s_fc = run_faster(gt, res, iou_type)
        rows.append({"iou_type": name, "masklab_s": t_ml, "pycocotools_s": t_pc,
                     "faster_coco_eval_s": t_fc, "vs_pycocotools": t_pc / t_ml,
                     "vs_faster_coco_eval": t_fc / t_ml,
                     "max_abs_diff_pycocotools": float(np.abs(s_ml - s_pc).max()),
                     "max_abs_diff_faster": float(np.abs(s_ml - s_fc).max()),
                     "AP": float(s_ml[0])})
    report("coco_eval", rows, {"images": args.images, "annotations": len(gt["annotations"]),
                               "detections": len(results)})


if __name__ == "__main__":
    main()
