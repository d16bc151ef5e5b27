"""Click → mask drawn in the annotation app, measured in a real browser (Debian's Chromium,
driven by Playwright) on this machine, after the image embedding: p50 / p95 over many clicks,
each one a new object (click, mask drawn, Esc). Side by side in the same run: the server's own
compute per click (masklab's decoder + RLE) and the documented transformers usage per click
(processor + model on the cached embedding + ``post_process_masks``), same weights, same
image, same points.

The model is SAM 2.1 Hiera-T's architecture (the real checkpoint when cached; else random
weights, the same computation). Images: real COCO photos from ../shared/data/coco_tiny when
present.

    python bench/app_click.py --clicks 40
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
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


def browser_clicks(base: str, image_id: int, points) -> tuple[list[float], list[float]]:
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
        page.goto(f"{base}/#/i/{image_id}")
        page.wait_for_function(f"window.masklabEditor && window.masklabEditor.imageId() === "
                               f"{image_id}")
        page.wait_for_function("document.getElementById('hint').textContent"
                               ".startsWith('ready')", timeout=300_000)
        for k, (x, y) in enumerate(points):
            page.mouse.click(*page.evaluate(f"window.masklabEditor.toPage({x}, {y})"))
            page.wait_for_function(f"window.masklabTimings.length >= {k + 1}")
            page.keyboard.press("Escape")
        times = page.evaluate("window.masklabTimings")
        b.close()
    return times, server_ms


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

    from masklab.app.pgtemp import _free_port
    from masklab.io.images import read_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clicks", type=int, default=40)
    args = ap.parse_args()
    from video_sam import full_size

    work = Path(tempfile.mkdtemp(prefix="masklab-click-"))
    model = full_size("sam2", work)
    imgs = images(work / "imgs", 2)
    port = _free_port()
    proc = start(work / "data", port, str(model), None, imgs)
    base = f"http://127.0.0.1:{port}"
    try:
        c = httpx.Client(base_url=base, timeout=600)
        c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf"]
        p = c.post("/api/projects", json={"name": "click", "classes": ["object"]}).json()
        c.post(f"/api/projects/{p['id']}/import", json={"folder": str(imgs)}).raise_for_status()
        ims = c.get(f"/api/projects/{p['id']}/images").json()
        for i in ims:  # every embedding first (the app's prefetch has done it in use)
            c.post(f"/api/images/{i['id']}/embed").raise_for_status()
        im = ims[0]
        rng = np.random.default_rng(0)
        pts = [(float(rng.uniform(0.1, 0.9) * im["width"]),
                float(rng.uniform(0.1, 0.9) * im["height"])) for _ in range(args.clicks)]
        browser, server = browser_clicks(base, im["id"], pts)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    image = read_image(imgs / im["file_name"])
    peer = transformers_clicks(model, image, pts)
    rows = []
    for name, v in (("masklab app, browser: click -> mask drawn", browser),
                    ("masklab server compute per click", server),
                    ("transformers per click (processor + model + post-process)", peer)):
        rows.append({"path": name, "clicks": len(v), "p50_ms": round(statistics.median(v), 1),
                     "p95_ms": round(pct(v, 0.95), 1), "max_ms": round(max(v), 1)})
    for r in rows:
        r["p50_vs_transformers"] = round(rows[2]["p50_ms"] / r["p50_ms"], 2)
    report("app_click", rows, {"model": "SAM 2.1 Hiera-T architecture",
                               "image": f"{im['width']}x{im['height']}", "target_p95_ms": 150})
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
