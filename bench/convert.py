"""Format conversion, masklab against Datumaro, through each tool's command line on the
same files: a COCO file of ``--images`` images (generated, 64 x 48, two objects each as
polygons) to CVAT XML, Pascal VOC and Cityscapes, and back to COCO; seconds and the ratio
(Datumaro / masklab: above 1, masklab is faster). Each conversion is one process on the
files: masklab's ``masklab convert``; Datumaro, from the peers' environment (``make
peers``), ``Dataset.import_from(...).export(...)`` — what its ``datum convert`` runs (its CLI
needs the ``cli`` extra's plotting packages besides).

    python bench/convert.py --images 10000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

ROOT = Path(__file__).resolve().parents[1]
DATUM = ROOT / ".venv-peers" / "bin" / "datum"
MASKLAB = Path(sys.executable).with_name("masklab")
# masklab format -> (Datumaro's exporter / importer)
FORMATS = {"cvat": ("cvat", "cvat"), "voc": ("voc_instance_segmentation",
                                            "voc_instance_segmentation"),
           "cityscapes": ("cityscapes", "cityscapes")}


def make_coco(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n):
        images.append({"id": i + 1, "file_name": f"img{i:06d}.png", "width": 64, "height": 48})
        for k in range(2):
            cx, cy = rng.uniform(12, 52), rng.uniform(10, 38)
            r = rng.uniform(4, 9)
            t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            poly = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).round(2)
            x0, y0 = poly.min(0)
            x1, y1 = poly.max(0)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": k + 1,
                         "segmentation": [poly.reshape(-1).tolist()], "iscrowd": 0,
                         "area": float(np.pi * r * r),
                         "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]})
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "person"}, {"id": 2, "name": "car"}]}))


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.zeros((48, 64, 3), np.uint8))
    for i in range(n):
        img.save(folder / f"img{i:06d}.png")


def link_images(root: Path, fmt: str, images: Path) -> None:
    """Datumaro's CVAT and Cityscapes importers look for the images (not timed)."""
    if fmt == "cvat":
        shutil.rmtree(root / "images", ignore_errors=True)  # its export left it empty
        (root / "images").symlink_to(images, target_is_directory=True)
    elif fmt == "cityscapes":
        d = root / "leftImg8bit" / "default"
        d.mkdir(parents=True, exist_ok=True)
        for f in images.iterdir():
            (d / f"{f.stem}_leftImg8bit.png").symlink_to(f)


def datumaro(src_fmt: str, src: Path, dst_fmt: str, dst: Path) -> list[str]:
    """Datumaro's conversion; PNG formats take masks, so COCO's polygons become masks first
    (its ``polygons_to_masks`` transform, as its docs do it)."""
    masks = ".transform('polygons_to_masks')" if dst_fmt.startswith(("voc", "cityscapes")) \
        else ""
    code = (f"import datumaro as dm; dm.Dataset.import_from({str(src)!r}, {src_fmt!r})"
            f"{masks}.export({str(dst)!r}, {dst_fmt!r}, save_media=False)")
    return [str(DATUM.with_name("python")), "-c", code]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))}… failed: {r.stderr[-800:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    args = ap.parse_args()
    if not DATUM.is_file():
        raise SystemExit("no Datumaro: make peers")
    work = Path(tempfile.mkdtemp(prefix="masklab-convert-"))
    coco = work / "coco.json"
    make_coco(coco, args.images)
    rows = []
    for fmt, (d_out, d_in) in FORMATS.items():
        ours = work / f"ours-{fmt}"
        theirs = work / f"theirs-{fmt}"
        there = ours / "annotations.xml" if fmt == "cvat" else ours
        if fmt == "cvat":
            ours.mkdir()
        t_ours_to = timed([str(MASKLAB), "--quiet", "convert", str(coco), str(there), "--to", fmt])
        t_ours_back = timed([str(MASKLAB), "--quiet", "convert", str(there),
                             str(work / f"ours-{fmt}.json"), "--from", fmt, "--to", "coco"])
        cdir = work / "coco-layout"  # Datumaro reads COCO from its layout, with images
        if not cdir.exists():
            (cdir / "annotations").mkdir(parents=True)
            shutil.copy(coco, cdir / "annotations" / "instances_default.json")
            write_images(cdir / "images" / "default", args.images)
        t_their_to = timed(datumaro("coco_instances", cdir, d_out, theirs))
        link_images(theirs, fmt, cdir / "images" / "default")  # its importers want them
        t_their_back = timed(datumaro(d_in, theirs, "coco_instances",
                                      work / f"theirs-{fmt}-coco"))
        n_ours = sum(1 for _ in json.loads((work / f"ours-{fmt}.json").read_text())
                     ["annotations"])
        rows.append({"format": fmt, "images": args.images,
                     "masklab_to_s": round(t_ours_to, 1), "masklab_back_s": round(t_ours_back, 1),
                     "datumaro_to_s": round(t_their_to, 1),
                     "datumaro_back_s": round(t_their_back, 1),
                     "ratio": round((t_their_to + t_their_back) / (t_ours_to + t_ours_back), 2),
                     "masklab_objects_back": n_ours})
        print(rows[-1], flush=True)
    report("convert", rows, {"images": args.images, "image_size": "64x48",
                             "objects_per_image": 2, "datumaro": _datumaro_version()})
    shutil.rmtree(work, ignore_errors=True)


def _datumaro_version() -> str:
    r = subprocess.run([str(DATUM.with_name("python")), "-c",
                        "import datumaro; print(datumaro.__version__)"], capture_output=True,
                       text=True)
    return r.stdout.strip()


if __name__ == "__main__":
    main()
