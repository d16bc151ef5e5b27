"""Pre-labelling a project in the annotation app (a background job, proposals stored in the
database) against ``masklab label`` on the same images with the same models (the CLI, files
out): seconds per image, side by side in one run. Then the job is killed with its server
(``kill -9``) halfway through a second project and resumed by a restarted server: every image
done once.

The detector is a small model: OWLv2's architecture at a tiny random size (the tests' model,
saved to a folder and loaded through the same loader as real checkpoints); masks are the
boxes (``--segmenter box``), so the figures compare the two pipelines around the model.

    python bench/app_prelabel.py --images 1000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import report, wait_job

CLASSES = ["cat", "dog"]


def make_images(folder: Path, n: int) -> Path:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        img = np.full((120, 160, 3), 40, np.uint8)
        x, y = rng.integers(10, 90), rng.integers(10, 60)
        img[y:y + 40, x:x + 50] = rng.integers(60, 250, 3)
        Image.fromarray(img).save(folder / f"im{k:05d}.png")
    return folder


def client(port):
    import httpx

    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
    return c


def main() -> None:
    from masklab.app.process import free_port, start_server, stop_server
    from tests.grounding import tiny

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="masklab-prelabel-"))
    imgs = make_images(work / "imgs", args.images)
    detector = work / "owl"
    tiny.owl(detector)
    common = ["--classes", ",".join(CLASSES), "--detector", str(detector), "--segmenter",
              "box", "--box-threshold", "0.0"]
    # masklab label: the CLI on the files
    t = time.perf_counter()
    cli = str(Path(sys.executable).with_name("masklab"))
    r = subprocess.run([cli, "-q", "label", str(imgs), *common, "--out", str(work / "label"),
                        "--no-overlays"], capture_output=True, text=True)
    label_s = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    # the app: import, then a pre-labelling job over every image
    port = free_port()
    data = work / "data"
    extra = ["--backend", "grabcut", "--root", str(work)]
    proc = start_server(data, *extra, port=port, quiet=True)[0]
    params = {"source": "text", "classes": CLASSES, "detector": str(detector),
              "segmenter": "box", "box_threshold": 0.0}
    try:
        c = client(port)
        p = c.post("/api/projects", json={"name": "p", "classes": CLASSES}).json()
        wait_job(c, c.post(f"/api/projects/{p['id']}/jobs", json={
            "kind": "import", "params": {"folder": str(imgs)}}).json()["id"])
        t = time.perf_counter()
        j = wait_job(c, c.post(f"/api/projects/{p['id']}/jobs", json={
            "kind": "prelabel", "params": params}).json()["id"])
        app_s = time.perf_counter() - t
        assert j["state"] == "done" and j["done"] == args.images, j
        proposals = j["result"]["proposals"]
        # kill -9 halfway through a second project's job, restart, resume
        q = c.post("/api/projects", json={"name": "q", "classes": CLASSES}).json()
        wait_job(c, c.post(f"/api/projects/{q['id']}/jobs", json={
            "kind": "import", "params": {"folder": str(imgs)}}).json()["id"])
        jid = c.post(f"/api/projects/{q['id']}/jobs", json={
            "kind": "prelabel", "params": params}).json()["id"]
        while c.get(f"/api/jobs/{jid}").json()["done"] < args.images // 2:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed_at = None
        proc = start_server(data, *extra, port=port, quiet=True)[0]
        c = client(port)
        killed_at = c.get(f"/api/jobs/{jid}").json()["done"]
        j2 = wait_job(c, jid)
        counts = {}
        for proj in (p["id"], q["id"]):  # proposals stored per project
            n, offset = 0, 0
            while True:
                page = c.get(f"/api/projects/{proj}/images",
                             params={"offset": offset, "limit": 500}).json()
                n += sum(i["proposals"] for i in page["items"])
                offset += 500
                if offset >= page["total"]:
                    break
            counts[proj] = n
    finally:
        stop_server(proc)
    import json

    coco = json.loads((work / "label" / "annotations.json").read_text())
    rows = [{"path": "masklab label (CLI, files)", "images": args.images,
             "s_per_image": round(label_s / args.images, 4),
             "annotations": len(coco["annotations"]), "ratio": 1.0},
            {"path": "app pre-labelling job (proposals in the database)",
             "images": args.images, "s_per_image": round(app_s / args.images, 4),
             "annotations": proposals, "ratio": round(label_s / app_s, 2)}]
    report("app_prelabel", rows, {
        "detector": "OWLv2 architecture, tiny random (tests/grounding/tiny.py)",
        "segmenter": "box",
        # the killed and resumed job stored exactly the proposals of the uninterrupted one
        "kill9": {"done_when_restarted": killed_at, "runs": j2["runs"], "done": j2["done"],
                  "failed": j2["failed"], "proposals_stored": counts[q["id"]],
                  "proposals_uninterrupted": counts[p["id"]],
                  "same": counts[q["id"]] == counts[p["id"]]}})


if __name__ == "__main__":
    main()
