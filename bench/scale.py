"""Scale-out on this machine: `segment instances` and `eval coco` in-process against Ray with
1 and 2 workers (a local cluster), and DDP training images/s at 1 and 2 processes.

Reported per run: seconds, images/s, the Ray overhead at 1 worker (time / in-process time - 1)
and the speed-up at 2 workers (in-process time / time). Ray runs include starting the actors
(importing torch, loading the model), as a user's run does; the cluster itself is started
once, before. `segment instances` is also split into start-up (seconds to the first finished
batch) and the steady rate after it (images/s), timed as each image is recorded in the run
manifest: the per-image overhead of Ray apart from its fixed cost.

Models: Mask R-CNN R50-FPN (random weights, the real computation) on COCO photos from
../shared/data/coco_tiny (synthetic images when absent); a U-Net on synthetic shapes for DDP.

    python bench/scale.py --images 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from masklab.manifest import RunManifest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

COCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny"


def _images(folder: Path, n: int) -> list[Path]:
    import shutil

    from masklab.io.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    real = sorted((COCO / "val2017").glob("*.jpg"))[:n] if COCO.is_dir() else []
    for p in real:
        shutil.copyfile(p, folder / p.name)
    rng = np.random.default_rng(0)
    for k in range(n - len(real)):
        write_image(folder / f"s{k:03d}.jpg", rng.integers(0, 255, (480, 640, 3), np.uint8))
    return sorted(folder.iterdir())


def _run(*args) -> float:
    from click.testing import CliRunner

    from masklab.cli import main

    t = time.perf_counter()
    r = CliRunner().invoke(main, [str(a) for a in args])
    if r.exit_code != 0:
        raise RuntimeError(r.output)
    return time.perf_counter() - t


class _TimedManifest(RunManifest):
    """A run manifest that also notes when each image was recorded (the driver sees it)."""

    def __init__(self, out: Path, settings: dict):
        super().__init__(out, settings)
        self.times: list[float] = []

    def record(self, key, payload):
        super().record(key, payload)
        self.times.append(time.perf_counter())


def _timing(t0: float, times: list[float], n: int) -> dict:
    """Total seconds; seconds to the first finished batch (start-up: actors, model load);
    steady images/s after it (the per-image cost, start-up excluded)."""
    first = [t for t in times if t - times[0] < 0.05]
    steady = (n - len(first)) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0
    return {"seconds": round(times[-1] - t0, 2), "first_batch_s": round(times[0] - t0, 2),
            "steady_images_per_s": round(steady, 3), "images_per_s": round(n / (times[-1] -
                                                                                t0), 3)}


def bench_segment(work: Path, n: int) -> list[dict]:
    """In-process: load the model, then ``segment_object_files``; Ray: ``segment_objects``
    (each actor imports torch and loads the model). Same files, same options, a manifest
    each, timed at every recorded image."""
    import torch

    from masklab.models.objects import load_object_model
    from masklab.scale import ray_engine
    from masklab.tasks.instances import segment_object_files

    torch.manual_seed(0)
    m = load_object_model("maskrcnn_resnet50_fpn", weights=None, num_classes=91)
    torch.save(m.net.state_dict(), work / "w.pth")
    del m
    files = _images(work / "img", n)
    options = {"score_threshold": 0.0, "max_detections": 20, "batch_size": 2,
               "overlay": False}
    rows = []
    t0 = time.perf_counter()
    man = _TimedManifest(_mkdir(work / "local"), {"run": "local"})
    model = load_object_model("maskrcnn_resnet50_fpn", weights=work / "w.pth", num_classes=91)
    segment_object_files(model, files, work / "local", quiet=True, manifest=man, **options)
    rows.append({"verb": "segment instances", "engine": "in-process", "workers": 1,
                 **_timing(t0, man.times, n)})
    del model
    spec = {"model": "maskrcnn_resnet50_fpn", "weights": str(work / "w.pth"),
            "num_classes": 91, "device": "cpu"}
    for w in (1, 2):
        t0 = time.perf_counter()
        man = _TimedManifest(_mkdir(work / f"ray{w}"), {"run": f"ray{w}"})
        ray_engine.segment_objects(spec, files, work / f"ray{w}", workers=w, manifest=man,
                                   **options)
        rows.append({"verb": "segment instances", "engine": "ray", "workers": w,
                     **_timing(t0, man.times, n)})
    a = json.loads((work / "local" / "results.json").read_text())
    b = json.loads((work / "ray2" / "results.json").read_text())
    assert [(x["image_id"], x["category_id"]) for x in a] == \
        [(x["image_id"], x["category_id"]) for x in b], "outputs differ"
    _ratios(rows)
    base = rows[0]["steady_images_per_s"]
    for r in rows:
        r["steady_vs_in_process"] = round(r["steady_images_per_s"] / base, 2)
    rows[1]["ray_overhead_1_worker_steady"] = \
        f"{100 * (base / rows[1]['steady_images_per_s'] - 1):+.0f} %"
    return rows


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def bench_eval(work: Path, n_images: int) -> list[dict]:
    from masklab.data.synthetic import write_shapes_coco

    root = write_shapes_coco(work / "coco", n_train=2, n_val=n_images, size=96, seed=0)
    gt = json.loads((root / "val.json").read_text())
    rng = np.random.default_rng(0)
    res = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        for _ in range(20):
            d = rng.normal(0, 3, 4)
            res.append({"image_id": a["image_id"], "category_id": a["category_id"],
                        "bbox": [x + d[0], y + d[1], max(1, w + d[2]), max(1, h + d[3])],
                        "score": float(rng.uniform())})
    (work / "res.json").write_text(json.dumps(res))
    rows = []
    common = ["eval", "coco", root / "val.json", work / "res.json", "--iou-type", "bbox"]
    t_local = _run(*common, "--json", work / "local.json")
    rows.append({"verb": f"eval coco ({len(res)} detections)", "engine": "in-process",
                 "workers": 1, "seconds": round(t_local, 2),
                 "images_per_s": round(n_images / t_local, 1)})
    for w in (1, 2):
        t = _run(*common, "--engine", "ray", "--workers", w, "--json", work / f"r{w}.json")
        rows.append({"verb": f"eval coco ({len(res)} detections)", "engine": "ray",
                     "workers": w, "seconds": round(t, 2),
                     "images_per_s": round(n_images / t, 1)})
        assert json.loads((work / f"r{w}.json").read_text())["stats"] == \
            json.loads((work / "local.json").read_text())["stats"], "stats differ"
    _ratios(rows)
    return rows


def bench_ddp(work: Path) -> list[dict]:
    from masklab.data.synthetic import write_shapes_dataset

    data = write_shapes_dataset(work / "shapes", 96, 8, size=64, seed=1)
    rows = []
    for nproc in (1, 2):
        out = work / f"ddp{nproc}"
        cmd = [sys.executable, "-m", "masklab.cli", "-q", "train", "semantic", "--data",
               str(data), "--num-classes", "4", "--model", "unet", "--model-arg", "width=16",
               "--model-arg", "norm=group", "--batch-size", "16", "--crop", "none",
               "--scale", "1,1", "--epochs", "2", "--workers", "0", "--device", "cpu",
               "--val-every", "2", "--out", str(out), "--nproc", str(nproc)]
        env = {**os.environ, "OMP_NUM_THREADS": str(2 // nproc)}
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if r.returncode:
            raise RuntimeError(r.stderr)
        ips = float(r.stdout.split("train images/s")[0].split(";")[-1])
        rows.append({"verb": "train semantic (U-Net w16, 64x64)", "engine": "torch DDP",
                     "workers": nproc, "seconds": round(wall, 2), "images_per_s": ips})
        if nproc == 2:  # the same training under Ray Train's TorchTrainer (a new cluster)
            t = time.perf_counter()
            r = subprocess.run([*cmd[:-2], "--engine", "ray", "--nproc", "2",
                                "--out", str(work / "raytrain")], capture_output=True,
                               text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
            wall = time.perf_counter() - t
            if r.returncode:
                raise RuntimeError(r.stderr)
            ips = float(r.stdout.split("train images/s")[0].split(";")[-1])
            rows.append({"verb": "train semantic (U-Net w16, 64x64)",
                         "engine": "Ray Train (DDP)", "workers": 2, "seconds": round(wall, 2),
                         "images_per_s": ips})
    for r in rows:
        r["vs_in_process"] = round(r["images_per_s"] / rows[0]["images_per_s"], 2)
    return rows


def _ratios(rows: list[dict]) -> None:
    base = rows[0]["seconds"]
    for r in rows:
        r["vs_in_process"] = round(base / r["seconds"], 2)
    rows[1]["ray_overhead_1_worker"] = f"{100 * (rows[1]['seconds'] / base - 1):+.0f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--only", default="segment,eval,train",
                    help="Comma-separated parts to run (segment, eval, train).")
    args = ap.parse_args()
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=False)
    work = Path(tempfile.mkdtemp(prefix="masklab-scale-"))
    rows = bench_segment(work, args.images) if "segment" in args.only else []
    if "eval" in args.only:
        rows += bench_eval(work, args.eval_images)
    ray.shutdown()
    if "train" in args.only:
        rows += bench_ddp(work)
    for r in rows:
        for k in ("ray_overhead_1_worker", "ray_overhead_1_worker_steady", "first_batch_s",
                  "steady_images_per_s", "steady_vs_in_process"):
            r.setdefault(k, "")
    report("scale" if args.only == "segment,eval,train" else f"scale_{args.only}", rows,
           {"cores": os.cpu_count(), "images": args.images})


if __name__ == "__main__":
    main()
