"""The annotation app with a 100,000-image project, on SQLite and PostgreSQL: a real server
process on loopback (GrabCut backend: no model is involved), small generated images.

Measured through HTTP, as the browser does:

- import as a background job (images/s), against the synchronous import inside one request
  (what the app did before jobs), same files, same server;
- one page of the image list (100 rows) under each filter (none, status, assignee, annotated,
  name contains, recently changed, a deep page), p50 / p95 over random pages, against fetching
  the whole list (what the project page did before paging: one response of every image);
- opening an image and next / previous under a filter, p50 / p95;
- a COCO export job with one annotation per image, at 10,000 and at 100,000 images: seconds and
  the server's resident memory before and after (flat: it must not grow with the project).

Anchors (their users' reports): CVAT took 21 min to create a 100k-frame task (cvat #8602) and
30 s to show a 600-task project (#3843); Label Studio pages take > 15 s at 100k tasks (#9637).

    python bench/app_scale.py --images 100000
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, wait_job


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def make_images(folder: Path, n: int) -> Path:
    """``n`` tiny PNGs (16 x 12), written once and reused by later runs."""
    import zlib

    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.png")))
    if have >= n:
        return folder

    def png(k: int) -> bytes:  # a valid 16 x 12 RGB PNG, colour from k
        import struct

        w, h = 16, 12
        row = b"\x00" + bytes([k % 251, (k // 251) % 251, 7]) * w
        raw = zlib.compress(row * h)

        def chunk(t, d):
            return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2,
                                                                    0, 0, 0))
                + chunk(b"IDAT", raw) + chunk(b"IEND", b""))

    for k in range(have, n):
        sub = folder / f"d{k // 10000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"img{k:06d}.png").write_bytes(png(k))
    return folder


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(c, url: str, params=None, n: int = 60) -> list[float]:
    out = []
    for _ in range(n):
        p = params() if callable(params) else params
        t = time.perf_counter()
        r = c.get(url, params=p)
        out.append(1000 * (time.perf_counter() - t))
        r.raise_for_status()
    return out


def annotate_all(data: Path, db_url: str | None, project_id: int, limit: int) -> None:
    """One rectangle annotation on each of the first ``limit`` images, written in bulk
    straight into the database (set-up for the export, not timed)."""
    import numpy as np
    from sqlalchemy import insert, select, update

    from masklab import rle
    from masklab.app import db

    engine = db.make_engine(db_url or db.sqlite_url(data / "masklab.db"))
    m = np.zeros((12, 16), bool)
    m[2:9, 3:12] = True
    r = rle.encode(m)[0]
    with engine.begin() as conn:
        ids = list(conn.execute(select(db.Image.id).where(db.Image.project_id == project_id)
                                .order_by(db.Image.id).limit(limit)).scalars())
        for k in range(0, len(ids), 5000):
            conn.execute(insert(db.Annotation), [
                {"image_id": i, "class_id": 1, "rle": r["counts"], "area": 63,
                 "bbox": [3, 2, 9, 7], "source": "hand", "score": None, "visible": True,
                 "z": 1, "track_id": None, "attributes": {}, "proposal": False}
                for i in ids[k:k + 5000]])
            conn.execute(update(db.Image).where(db.Image.id.in_(ids[k:k + 5000]))
                         .values(n_annotations=1))
    # written behind the app's back: analyze as the app does after its own bulk jobs (and
    # autovacuum would a minute later)
    from masklab.app.store import Store

    Store(engine, data).settle()
    engine.dispose()


def run(label: str, data: Path, imgs: Path, n: int, db_url: str | None) -> list[dict]:
    import httpx

    from masklab.app.process import free_port, start_server, stop_server

    port = free_port()
    extra = ["--backend", "grabcut", "--root", str(imgs.parent)] + \
        (["--db", db_url] if db_url else [])
    proc = start_server(data, *extra, port=port, quiet=True)[0]
    rows = []
    try:
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=3600)
        c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
        # import: a job over n images, then (baseline) the request import of the same files
        p = c.post("/api/projects", json={"name": "scale", "classes": ["a", "b"]}).json()
        t = time.perf_counter()
        job = c.post(f"/api/projects/{p['id']}/jobs", json={
            "kind": "import", "params": {"folder": str(imgs)}}).json()
        j = wait_job(c, job["id"])
        job_s = time.perf_counter() - t
        assert j["state"] == "done" and j["result"]["added"] == n, j
        q = c.post("/api/projects", json={"name": "baseline", "classes": ["a"]}).json()
        t = time.perf_counter()
        r = c.post(f"/api/projects/{q['id']}/import", json={"folder": str(imgs)})
        req_s = time.perf_counter() - t
        r.raise_for_status()
        rows.append({"db": label, "what": f"import {n:,} images", "ours": f"job {job_s:.1f} s "
                     f"({n / job_s:,.0f}/s)", "before": f"in the request {req_s:.1f} s "
                     f"({n / req_s:,.0f}/s)", "p50_ms": "", "p95_ms": "",
                     "ratio": round(req_s / job_s, 2)})
        print(rows[-1], flush=True)
        pid = p["id"]
        ids = [i["id"] for i in c.get(f"/api/projects/{pid}/images",
                                      params={"limit": 500, "sort": "id"}).json()["items"]]
        rng = random.Random(0)
        # statuses and assignees over the project (so that the filters select something)
        for i in ids[:300]:  # some images done (the status filter selects them)
            c.put(f"/api/images/{i}/status", json={"status": "done"}).raise_for_status()
        annotate_all(data, db_url, pid, n)
        # the list: one page under each filter
        whole = []
        for _ in range(3):
            t = time.perf_counter()
            page, got = 0, 0
            while True:
                r = c.get(f"/api/projects/{pid}/images",
                          params={"offset": page * 500, "limit": 500}).json()
                got += len(r["items"])
                page += 1
                if got >= r["total"]:
                    break
            whole.append(1000 * (time.perf_counter() - t))
        filters = [("no filter", {}), ("status=done", {"status": "done"}),
                   ("unassigned", {"assignee": "none"}), ("annotated", {"annotated": "true"}),
                   ("not annotated", {"annotated": "false"}), ("name contains", {"q": "img0001"}),
                   ("recently changed first", {"sort": "-updated"})]
        for name, f in filters:
            total = c.get(f"/api/projects/{pid}/images", params={**f, "limit": 1}).json()[
                "total"]
            v = timed(c, f"/api/projects/{pid}/images", lambda f=f, total=total: {
                **f, "limit": 100, "offset": rng.randrange(max(1, total - 100))})
            rows.append({"db": label, "what": f"list page of 100: {name} ({total:,} match)",
                         "ours": "", "before": f"whole list {statistics.median(whole):.0f} ms",
                         "p50_ms": round(statistics.median(v), 1),
                         "p95_ms": round(pct(v, 0.95), 1),
                         "ratio": round(statistics.median(whole) / statistics.median(v), 1)})
            print(rows[-1], flush=True)
        v = []
        for _ in range(60):
            i = rng.choice(ids)
            t = time.perf_counter()
            c.get(f"/api/images/{i}/annotations").raise_for_status()
            v.append(1000 * (time.perf_counter() - t))
        rows.append({"db": label, "what": "open an image (record + annotations)", "ours": "",
                     "before": "", "p50_ms": round(statistics.median(v), 1),
                     "p95_ms": round(pct(v, 0.95), 1), "ratio": ""})
        for name, f in (("next", {"step": 1}), ("previous, status=done",
                                                {"step": -1, "status": "done"})):
            v = []
            for _ in range(60):
                i = rng.choice(ids)
                t = time.perf_counter()
                c.get(f"/api/images/{i}/neighbour", params=f).raise_for_status()
                v.append(1000 * (time.perf_counter() - t))
            rows.append({"db": label, "what": f"{name} image", "ours": "", "before": "",
                         "p50_ms": round(statistics.median(v), 1),
                         "p95_ms": round(pct(v, 0.95), 1), "ratio": ""})
            print(rows[-1], flush=True)
        # COCO export as a job: the small project (first 10k images) and the whole one
        small = c.post("/api/projects", json={"name": "small", "classes": ["a", "b"]}).json()
        sub = sorted(imgs.glob("d*"))[:max(1, min(n, 10_000) // 10_000)]
        for s in sub:
            wait_job(c, c.post(f"/api/projects/{small['id']}/jobs", json={
                "kind": "import", "params": {"folder": str(s)}}).json()["id"])
        annotate_all(data, db_url, small["id"], 10_000)
        for name, proj in (("10k", small["id"]), (f"{n // 1000}k", pid)):
            before = rss_mb(proc.pid)
            t = time.perf_counter()
            j = wait_job(c, c.post(f"/api/projects/{proj}/jobs", json={
                "kind": "export", "params": {"format": "coco"}}).json()["id"])
            secs = time.perf_counter() - t
            after = rss_mb(proc.pid)
            assert j["state"] == "done", j
            rows.append({"db": label, "what": f"COCO export job, {name} images x 1 annotation",
                         "ours": f"{secs:.1f} s, {j['result']['bytes'] / 1e6:.0f} MB",
                         "before": f"RSS {before:.0f} -> {after:.0f} MB", "p50_ms": "",
                         "p95_ms": "", "ratio": ""})
            print(rows[-1], flush=True)
    finally:
        stop_server(proc)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--work", type=Path, help="where the generated images stay (reused)")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    from masklab.app.pgtemp import postgres_bin, temporary_postgres

    work = args.work or Path(tempfile.gettempdir()) / "masklab-scale"
    imgs = make_images(work / f"imgs{args.images}", args.images)
    rows = run("sqlite", Path(tempfile.mkdtemp(prefix="masklab-scale-")), imgs, args.images,
               None)
    if not args.no_postgres and postgres_bin() is not None:
        with temporary_postgres() as url:
            rows += run("postgresql", Path(tempfile.mkdtemp(prefix="masklab-scale-")), imgs,
                        args.images, url + "/postgres")
    report("app_scale", rows, {"images": args.images, "image_size": "16x12 PNG",
                               "targets": {"import_per_s": 1000, "page_p95_ms": 50,
                                           "open_p95_ms": 50}})
    with contextlib.suppress(Exception):
        import shutil

        shutil.rmtree(work / "data", ignore_errors=True)


if __name__ == "__main__":
    main()
