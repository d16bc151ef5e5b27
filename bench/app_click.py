"""Click → mask drawn in the annotation app, measured in a real browser (Debian's Chromium,
driven by Playwright) on this machine, after the image embedding: p50 / p95 over many clicks,
each one a new object (click, mask drawn, Esc) — with the browser's decoder (onnxruntime-web in
a Web Worker on the fp16 embedding) and with the server's, each with no load and while
``--annotators`` simulated annotators (bench/app_load.py's) work on the same server. Side by
side in the same run: the server's own compute per click and the documented transformers usage
per click (processor + model on the cached embedding + ``post_process_masks``), same weights,
same image, same points. Also the embedding's bytes per image against CVAT's (SAM's float32
embedding as base64 JSON).

The model is SAM 2.1 Hiera-T's architecture (the real checkpoint when cached; else random
weights, the same computation). Images: real COCO photos from ../shared/data/coco_tiny when
present.

    python bench/app_click.py --clicks 40 --annotators 20
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report
from app_load import images, start


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))]


def browser_zoom_pan(base: str, image_id: int, steps: int = 60) -> list[float]:
    """Redraw times (ms) while zooming with the wheel and panning by dragging."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = b.new_context(viewport={"width": 1600, "height": 900},
                             bypass_csp=True).new_page()
        page.goto(f"{base}/#/i/{image_id}")
        page.wait_for_function(f"window.masklabEditor && window.masklabEditor.imageId() === "
                               f"{image_id} && window.masklabEditor.objects().length > 0")
        page.wait_for_timeout(1500)
        page.keyboard.press("v")
        page.evaluate("window.masklabDrawTimes.length = 0")
        box = page.locator("#canvas").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(cx, cy)
        for k in range(steps):  # zoom in, then out
            page.mouse.wheel(0, -120 if k < steps // 2 else 120)
            page.wait_for_timeout(20)
        page.mouse.move(cx, cy)
        page.mouse.down(button="middle")
        for k in range(steps):
            page.mouse.move(cx + 4 * k, cy + 2 * k)
            page.wait_for_timeout(20)
        page.mouse.up(button="middle")
        page.wait_for_timeout(200)
        times = page.evaluate("window.masklabDrawTimes")
        b.close()
    return times


def browser_clicks(base: str, image_id: int, points, decoder: str = "browser"
                   ) -> tuple[list[float], list[float], dict]:
    """Click → mask drawn (ms) for each point, with the browser's decoder or the server's
    (``decoder``); also the server's own compute per click and the page's decoder state."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no system Chromium (apt-get install chromium)")
    server_ms: list[float] = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = b.new_context(viewport={"width": 1280, "height": 800},
                             bypass_csp=True).new_page()

        def on_response(r):
            if r.url.endswith("/segment"):
                server_ms.append(r.json()["ms"])

        page.on("response", on_response)
        page.goto(f"{base}/")
        page.evaluate(f"localStorage.setItem('masklab.decoder', '{decoder}')")
        page.goto(f"{base}/#/i/{image_id}")
        page.wait_for_function(f"window.masklabEditor && window.masklabEditor.imageId() === "
                               f"{image_id}")
        page.wait_for_function("document.getElementById('hint').textContent"
                               ".startsWith('ready')", timeout=300_000)
        page.wait_for_function(f"window.masklabDecoder && window.masklabDecoder.path === "
                               f"'{decoder}'", timeout=300_000)
        state = page.evaluate("({...window.masklabDecoder, isolated: crossOriginIsolated,"
                              " line: document.getElementById('decoder').textContent})")
        compute = []  # the decoder's own time per click (the worker's run, or the server's)
        for k, (x, y) in enumerate(points):
            page.mouse.click(*page.evaluate(f"window.masklabEditor.toPage({x}, {y})"))
            page.wait_for_function(f"window.masklabTimings.length >= {k + 1}")
            last = page.evaluate("window.masklabLastDecode")
            assert last["path"] == decoder
            compute.append(last["ms"])
            page.keyboard.press("Escape")
        times = page.evaluate("window.masklabTimings")
        state["compute_ms"] = compute
        b.close()
    return times, server_ms, state


def under_load(base: str, ims: list[dict], annotators: int, fn):
    """``fn()`` while ``annotators`` simulated annotators (bench/app_load.py's) work on the
    same server; returns ``fn``'s result and the load's request count."""
    import threading
    from collections import defaultdict

    from app_load import annotator

    sizes = {i["id"]: (i["height"], i["width"]) for i in ims}
    lat, counts, acked = defaultdict(list), {"errors": 0, "conflicts": 0}, {}
    lock, stop = threading.Lock(), threading.Event()
    threads = [threading.Thread(target=annotator, args=(
        k, base, list(sizes), sizes, stop, lat, counts, acked, lock))
        for k in range(annotators)]
    for th in threads:
        th.start()
    time.sleep(3)  # the load is running
    try:
        out = fn()
    finally:
        stop.set()
        for th in threads:
            th.join(120)
    seg = sorted(lat.get("segment", [0.0]))
    return out, {"requests": sum(len(v) for v in lat.values()),
                 "server_segment_p50_ms": round(1000 * statistics.median(seg), 1)}


def transformers_clicks(model_dir: Path, image: np.ndarray, points) -> list[float]:
    import torch
    import transformers as T

    model = T.Sam2Model.from_pretrained(str(model_dir)).eval()
    proc = T.Sam2Processor.from_pretrained(str(model_dir))
    inputs = proc(images=image, return_tensors="pt")
    with torch.no_grad():
        emb = model.get_image_embeddings(inputs["pixel_values"])
    out = []
    for x, y in points:
        t = time.perf_counter()
        inp = proc(images=image, input_points=[[[[float(x), float(y)]]]],
                   input_labels=[[[1]]], return_tensors="pt")
        sizes = inp.pop("original_sizes")
        inp.pop("pixel_values")
        with torch.no_grad():
            o = model(**inp, image_embeddings=emb, multimask_output=False)
        proc.post_process_masks(o.pred_masks, sizes)
        out.append(1000 * (time.perf_counter() - t))
    return out


def main() -> None:
    import httpx

    from masklab.app.process import free_port as _free_port
    from masklab.app.process import stop_server
    from masklab.io.images import read_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clicks", type=int, default=40)
    ap.add_argument("--objects", type=int, default=40, help="objects on the 4K image")
    ap.add_argument("--annotators", type=int, default=20,
                    help="simulated annotators loading the server (bench/app_load.py's)")
    args = ap.parse_args()
    from video_sam import full_size

    work = Path(tempfile.mkdtemp(prefix="masklab-click-"))
    model = full_size("sam2", work)
    imgs = images(work / "imgs", 6)
    port = _free_port()
    proc = start(work / "data", port, str(model), None, imgs)
    base = f"http://127.0.0.1:{port}"
    try:
        c = httpx.Client(base_url=base, timeout=600)
        c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
        p = c.post("/api/projects", json={"name": "click", "classes": ["object"]}).json()
        c.post(f"/api/projects/{p['id']}/import", json={"folder": str(imgs)}).raise_for_status()
        ims = c.get(f"/api/projects/{p['id']}/images?limit=500").json()["items"]
        for i in ims:  # every embedding first (the app's prefetch has done it in use)
            c.post(f"/api/images/{i['id']}/embed").raise_for_status()
        im = ims[0]
        rng = np.random.default_rng(0)
        pts = [(float(rng.uniform(0.1, 0.9) * im["width"]),
                float(rng.uniform(0.1, 0.9) * im["height"])) for _ in range(args.clicks)]
        runs = {}
        for decoder in ("browser", "server"):
            runs[decoder] = browser_clicks(base, im["id"], pts, decoder)
            runs[f"{decoder}+load"], runs[f"{decoder}+load:load"] = under_load(
                base, ims, args.annotators,
                lambda d=decoder: browser_clicks(base, im["id"], pts, d))
        emb_bytes = len(c.get(f"/api/images/{im['id']}/embedding").content)
        dec = c.get("/api/decoder").json()
        # a 4K image with 40 objects: redraw cost of zoom and pan
        from masklab import rle
        from masklab.io.images import read_image, write_image

        big = imgs / "uhd"  # below the server's import root
        big.mkdir()
        import cv2

        photo = read_image(imgs / im["file_name"])
        write_image(big / "uhd.png", cv2.resize(photo, (3840, 2160)))
        q = c.post("/api/projects", json={"name": "4k", "classes": ["a", "b", "c"]}).json()
        c.post(f"/api/projects/{q['id']}/import", json={"folder": str(big)}).raise_for_status()
        uhd = c.get(f"/api/projects/{q['id']}/images").json()["items"][0]
        yy, xx = np.mgrid[:2160, :3840]
        for k in range(args.objects):
            cx, cy = rng.uniform(200, 3640), rng.uniform(200, 1960)
            rx, ry = rng.uniform(60, 400), rng.uniform(60, 400)
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            c.post(f"/api/images/{uhd['id']}/annotations", json={
                "class_id": 1 + k % 3, "mask": rle.encode(m)[0]}).raise_for_status()
        draws = browser_zoom_pan(base, uhd["id"])
    finally:
        stop_server(proc)
    image = read_image(imgs / im["file_name"])
    peer = transformers_clicks(model, image, pts)
    rows = []
    named = [("browser decoder: click -> mask drawn", runs["browser"][0]),
             (f"browser decoder, {args.annotators} annotators loading the server",
              runs["browser+load"][0]),
             ("server decoder: click -> mask drawn", runs["server"][0]),
             (f"server decoder, {args.annotators} annotators loading the server",
              runs["server+load"][0]),
             ("browser decoder: the worker's run per click (no load)",
              runs["browser"][2]["compute_ms"]),
             ("server compute per click (no load)", runs["server"][1]),
             ("transformers per click (processor + model + post-process)", peer)]
    for name, v in named:
        rows.append({"path": name, "clicks": len(v), "p50_ms": round(statistics.median(v), 1),
                     "p95_ms": round(pct(v, 0.95), 1), "max_ms": round(max(v), 1)})
    for r in rows:
        r["p50_vs_transformers"] = round(rows[-1]["p50_ms"] / r["p50_ms"], 2)
    rows.append({"path": f"4K image, {args.objects} objects: redraw during zoom and pan",
                 "clicks": len(draws), "p50_ms": round(statistics.median(draws), 1),
                 "p95_ms": round(pct(draws, 0.95), 1), "max_ms": round(max(draws), 1),
                 "p50_vs_transformers": ""})
    cvat = 4 * 256 * 64 * 64 * 4 / 3  # SAM ViT-H's float32 embedding as base64 (CVAT)
    meta = {"model": "SAM 2.1 Hiera-T architecture", "image": f"{im['width']}x{im['height']}",
            "target_p95_ms": {"no load": 50, "under load": 100},
            "embedding_bytes": emb_bytes, "cvat_embedding_bytes_base64": round(cvat),
            "embedding_vs_cvat": round(emb_bytes / cvat, 2),
            "decoder_onnx_bytes": dec.get("bytes"),
            "browser": {k: v for k, v in runs["browser"][2].items() if k != "compute_ms"},
            "load_browser": runs["browser+load:load"], "load_server": runs["server+load:load"]}
    report("app_click", rows, meta)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
