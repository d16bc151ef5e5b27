"""The annotation app under load: N simulated annotators on loopback against a real server
process, bounded in time, each opening images, clicking (SAM), saving and relabelling.

Reports requests/s, p50/p95 latency per route, errors (must be 0), 409 conflicts (two
annotators on one image: the loser reloads and retries, as the browser does), and a final
count from the database that proves no acknowledged edit was lost. Run on SQLite and, when
Debian's PostgreSQL binaries are there, on a throw-away PostgreSQL server: the two side by
side, the ratio in the table.

The model is SAM 2.1 Hiera-T's architecture (the real checkpoint when cached; else random
weights, the same computation); the embeddings are computed before the timed phase, as the
app's prefetch does while an annotator works.

    python bench/app_load.py --annotators 20 --seconds 60
    python bench/app_load.py --annotators 20 --seconds 60 --during-training
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny" / "val2017"


def images(folder: Path, n: int) -> Path:
    """``n`` images: real COCO photos when the shared data is there, else synthetic."""
    import shutil

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    real = sorted(SHARED.glob("*.jpg"))[:n] if SHARED.is_dir() else []
    for p in real:
        shutil.copyfile(p, folder / p.name)
    rng = np.random.default_rng(0)
    for k in range(n - len(real)):
        img = rng.integers(0, 255, (480, 640, 3), np.uint8)
        Image.fromarray(img).save(folder / f"synthetic{k:03d}.png")
    return folder


def start(data: Path, port: int, backend: str, db_url: str | None, root: Path
          ) -> subprocess.Popen:
    from masklab.app.process import start_server

    extra = ["--backend", backend, "--root", str(root)] + (["--db", db_url] if db_url else [])
    return start_server(data, *extra, port=port, quiet=True)[0]


def annotator(k, base, image_ids, sizes, stop, lat, counts, acked, lock):
    import httpx

    rnd = random.Random(k)
    c = httpx.Client(base_url=base, timeout=60)
    c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]

    def call(route, method, url, **kw):
        t = time.perf_counter()
        r = c.request(method, url, **kw)
        dt = time.perf_counter() - t
        with lock:
            lat[route].append(dt)
            if r.status_code == 409:
                counts["conflicts"] += 1
            elif r.status_code >= 400:
                counts["errors"] += 1
                counts.setdefault("first_error", f"{route}: {r.status_code} {r.text[:200]}")
        return r

    i = k
    while not stop.is_set():
        iid = image_ids[i % len(image_ids)]
        i += 1
        h, w = sizes[iid]
        data = call("open", "GET", f"/api/images/{iid}/annotations").json()
        version = data["image"]["version"]
        x, y = rnd.uniform(0.2, 0.8) * w, rnd.uniform(0.2, 0.8) * h
        seg = call("segment", "POST", f"/api/images/{iid}/segment",
                   json={"points": [[x, y]], "labels": [1]}).json()
        mask = seg["masks"][0]["mask"]
        for _ in range(5):  # a 409: reload, then save again
            r = call("save", "POST", f"/api/images/{iid}/annotations",
                     json={"class_id": 1, "mask": mask, "version": version, "source": "sam"})
            if r.status_code != 409:
                break
            version = call("open", "GET", f"/api/images/{iid}/annotations").json()[
                "image"]["version"]
        if r.status_code != 200:
            continue
        ann, version = r.json()["annotation"], r.json()["version"]
        with lock:
            acked[ann["id"]] = 1
        if rnd.random() < 0.3:  # relabel it
            for _ in range(5):
                r = call("relabel", "PATCH", f"/api/annotations/{ann['id']}",
                         json={"class_id": 2, "version": version})
                if r.status_code != 409:
                    break
                version = call("open", "GET", f"/api/images/{iid}/annotations").json()[
                    "image"]["version"]
            if r.status_code == 200:
                with lock:
                    acked[ann["id"]] = 2


def start_training(c, ims, args) -> int:
    """A training job on a second project of the same photos (each with a labelled box),
    running when the load starts; its id."""
    from masklab import rle

    p = c.post("/api/projects", json={"name": "train", "classes": ["thing"]}).json()
    c.post(f"/api/projects/{p['id']}/import", json={"folder": args.imgs}).raise_for_status()
    for im in c.get(f"/api/projects/{p['id']}/images?limit=500").json()["items"]:
        h, w = im["height"], im["width"]
        m = np.zeros((h, w), bool)
        m[h // 4:3 * h // 4, w // 4:3 * w // 4] = True
        c.post(f"/api/images/{im['id']}/annotations", json={
            "class_id": p["classes"][0]["id"], "mask": rle.encode(m)[0]}).raise_for_status()
        c.put(f"/api/images/{im['id']}/status", json={"status": "done"}).raise_for_status()
    job = c.post(f"/api/projects/{p['id']}/jobs", json={"kind": "train", "params": {
        "model": "unet", "model_config": {"depth": 4, "width": 16}, "epochs": 10_000,
        "minutes": 10, "crop": 256, "batch_size": 4}}).json()  # default threads
    for _ in range(600):  # until it trains
        if c.get(f"/api/jobs/{job['id']}/events").json()["events"]:
            return job["id"]
        time.sleep(0.5)
    raise SystemExit("the training job did not start")


def run(label: str, args, db_url: str | None, model: Path, imgs: Path,
        training: bool = False) -> dict:
    import httpx

    clock_offset = time.time() - time.perf_counter()  # events carry wall-clock times
    train_state = {}

    from masklab.app.process import free_port as _free_port
    from masklab.app.process import stop_server

    data = Path(tempfile.mkdtemp(prefix=f"masklab-load-{label}-"))
    port = _free_port()
    proc = start(data, port, str(model), db_url, imgs)
    base = f"http://127.0.0.1:{port}"
    try:
        c = httpx.Client(base_url=base, timeout=600)
        c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
        p = c.post("/api/projects", json={"name": "load", "classes": ["a", "b"]}).json()
        c.post(f"/api/projects/{p['id']}/import", json={"folder": str(imgs)}).raise_for_status()
        ims = c.get(f"/api/projects/{p['id']}/images?limit=500").json()["items"]
        sizes = {i["id"]: (i["height"], i["width"]) for i in ims}
        t = time.perf_counter()
        for i in ims:  # the embeddings, before the timed phase
            c.post(f"/api/images/{i['id']}/embed").raise_for_status()
        embed_s = (time.perf_counter() - t) / len(ims)
        train_job = start_training(c, ims, args) if training else None
        lat, counts, acked = defaultdict(list), {"errors": 0, "conflicts": 0}, {}
        lock, stop = threading.Lock(), threading.Event()
        threads = [threading.Thread(target=annotator, args=(
            k, base, list(sizes), sizes, stop, lat, counts, acked, lock))
            for k in range(args.annotators)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        time.sleep(args.seconds)
        stop.set()
        for th in threads:
            th.join(120)
        wall = time.perf_counter() - t0
        stored = {}
        for i in ims:
            for a in c.get(f"/api/images/{i['id']}/annotations").json()["annotations"]:
                stored[a["id"]] = a["class_id"]
        lost = sum(1 for a, cls in acked.items() if stored.get(a) != cls)
        if train_job is not None:
            j = c.get(f"/api/jobs/{train_job}").json()
            ev = c.get(f"/api/jobs/{train_job}/events").json()["events"]
            train_state = {"state_during_load": j["state"],
                           "steps_during_load": sum(1 for e in ev if e["event"] == "step"
                                                    and t0 <= e["time"] - clock_offset
                                                    <= t0 + wall)}
            c.post(f"/api/jobs/{train_job}/cancel")
    finally:
        stop_server(proc)
    n = sum(len(v) for v in lat.values())
    out = {"db": label + (", training a model" if training else ""),
           "annotators": args.annotators, "seconds": round(wall, 1),
           "requests": n, "req_per_s": round(n / wall, 1), "errors": counts["errors"],
           "conflicts_409": counts["conflicts"], "acked_edits": len(acked),
           "stored": len(stored), "lost": lost, "embed_s_per_image": round(embed_s, 2)}
    for route in ("open", "segment", "save", "relabel"):
        v = sorted(lat.get(route, [0.0]))
        out[f"{route}_p50_ms"] = round(1000 * statistics.median(v), 1)
        out[f"{route}_p95_ms"] = round(1000 * v[int(0.95 * (len(v) - 1))], 1)
    if "first_error" in counts:
        out["first_error"] = counts["first_error"]
    out.update(train_state)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotators", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--during-training", action="store_true",
                    help="SQLite with and without a training job running (the default "
                         "threads: one core left to the server); writes app_load_training")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from video_sam import full_size

    from masklab.app.pgtemp import postgres_bin, temporary_postgres

    work = Path(tempfile.mkdtemp(prefix="masklab-load-"))
    model = full_size("sam2", work)
    imgs = images(work / "imgs", args.images)
    args.imgs = str(imgs)
    if args.during_training:
        rows = [run("sqlite", args, None, model, imgs),
                run("sqlite", args, None, model, imgs, training=True)]
        for r in rows:
            r["segment_p50_vs_no_training"] = round(rows[0]["segment_p50_ms"]
                                                    / r["segment_p50_ms"], 2)
        report("app_load_training", rows, {"model": "SAM 2.1 Hiera-T architecture",
                                           "images": args.images,
                                           "training": "unet depth 4 width 16, crops 256, "
                                                       "default threads"})
        sys.exit(1 if any(r["errors"] or r["lost"] for r in rows) else 0)
    rows = [run("sqlite", args, None, model, imgs)]
    if not args.no_postgres and postgres_bin() is not None:
        with temporary_postgres() as url:
            rows.append(run("postgresql", args, url + "/postgres", model, imgs))
    if len(rows) == 2:
        rows[1]["req_per_s_vs_sqlite"] = round(rows[1]["req_per_s"] / rows[0]["req_per_s"], 2)
        rows[0]["req_per_s_vs_sqlite"] = 1.0
    report("app_load", rows, {"model": "SAM 2.1 Hiera-T architecture", "images": args.images})
    with contextlib.suppress(Exception):
        import shutil

        shutil.rmtree(work)
    if any(r["errors"] or r["lost"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
