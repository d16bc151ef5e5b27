"""Export of an app project of 1,000 images (5 objects each) in every format, through the
store (the route and ``masklab app --export`` call the same code). Reported: seconds and
images/s per format, and resident memory before and after.

There is no peer annotation tool that runs here (CVAT needs Docker); the COCO export is set
against writing the same annotations with pycocotools' own RLE encoder from dense masks, the
usual hand-written exporter.

    python bench/app_export.py --images 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(work: Path, n: int, per_image: int = 5):
    from PIL import Image

    from masklab import rle
    from masklab.app import db
    from masklab.app.store import Store

    imgs = work / "imgs"
    imgs.mkdir(parents=True)
    h, w = 480, 640
    Image.new("RGB", (w, h), (90, 90, 90)).save(imgs / "base.png")
    engine = db.make_engine(db.sqlite_url(work / "masklab.db"))
    db.migrate(engine)
    store = Store(engine, work, [work])
    p = store.create_project("big", ["a", "b", "c"])
    rng = np.random.default_rng(0)
    dense_all = []
    with store.Session() as s, s.begin():  # bulk set-up: one transaction
        for k in range(n):
            img = db.Image(project_id=p["id"], file_name=f"img{k:05d}.png",
                           path=str(imgs / "base.png"), width=w, height=h, sha256="0" * 64,
                           status="done", comment="", version=0)
            s.add(img)
            s.flush()
            yy, xx = np.mgrid[:h, :w]
            masks = []
            for j in range(per_image):
                cx, cy, r = rng.uniform(50, w - 50), rng.uniform(50, h - 50), rng.uniform(10, 60)
                m = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
                masks.append(m)
                enc = rle.encode(m)[0]
                ys, xs = np.nonzero(m)
                s.add(db.Annotation(image_id=img.id, class_id=1 + j % 3, rle=enc["counts"],
                                    area=int(m.sum()), bbox=[int(xs.min()), int(ys.min()),
                                                             int(np.ptp(xs)) + 1,
                                                             int(np.ptp(ys)) + 1],
                                    source="hand", visible=True, z=j, attributes={}))
            if k < 50:
                dense_all.append(masks)
    return store, p["id"], dense_all


def pycocotools_export(dense_all, n_images: int, path: Path) -> float:
    """The hand-written exporter: dense masks → pycocotools RLE → json.dump (timed on the
    first images, scaled to ``n_images``)."""
    from pycocotools import mask as M

    t = time.perf_counter()
    anns = []
    for i, masks in enumerate(dense_all):
        for m in masks:
            r = M.encode(np.asfortranarray(m.astype(np.uint8)))
            r["counts"] = r["counts"].decode()
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                         "segmentation": r, "area": float(M.area(r)),
                         "bbox": M.toBbox(r).tolist(), "iscrowd": 0})
    path.write_text(json.dumps({"annotations": anns}))
    return (time.perf_counter() - t) * n_images / len(dense_all)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="masklab-export-"))
    store, pid, dense = build(work, args.images)
    rows = []
    start = rss_mb()
    for fmt in ("coco", "coco-polygons", "yolo", "labels", "instances", "davis"):
        t = time.perf_counter()
        out = store.export(pid, fmt, work / "out" / fmt, quiet=True)
        dt = time.perf_counter() - t
        rows.append({"format": fmt, "images": args.images, "seconds": round(dt, 2),
                     "images_per_s": round(args.images / dt, 1),
                     "files": 1 if out.is_file() else sum(1 for _ in out.rglob("*.*"))})
    end = rss_mb()
    peer = pycocotools_export(dense, args.images, work / "peer.json")
    rows.append({"format": "coco via pycocotools (dense masks, hand-written)",
                 "images": args.images, "seconds": round(peer, 2),
                 "images_per_s": round(args.images / peer, 1), "files": 1})
    rows[0]["vs_pycocotools"] = round(peer / rows[0]["seconds"], 2)
    for r in rows[1:]:
        r["vs_pycocotools"] = ""
    report("app_export", rows, {"rss_mb_start": round(start, 1), "rss_mb_end": round(end, 1),
                                "objects_per_image": 5, "size": "640x480"})
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
