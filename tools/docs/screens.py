"""Screenshots of the annotation app for the documentation, taken while the site is built:
``masklab app --sample`` on a fresh data folder, driven in headless Chromium (the system
browser, through Playwright), exactly as a user clicks.

    from screens import app_screenshots
    app_screenshots(".")   # writes app-projects.png, app-images.png, app-editor.png
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]


NAMES = ("app-projects.png", "app-images.png", "app-editor.png")


def _note(path: Path) -> Path:
    """A picture that says the screenshot was not taken (no browser on the build machine)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (900, 120), (245, 245, 245))
    ImageDraw.Draw(img).text((20, 50), "screenshot not taken: the machine that built these "
                             "docs had no chromium", fill=(120, 0, 0))
    img.save(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_screenshots(out: str | os.PathLike = ".") -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out = Path(out)
    if chromium is None:  # a machine without the browser still builds the site, and says so
        print("warning: no chromium: the app's screenshots are notes (make setup installs "
              "Debian's chromium as root)", file=sys.stderr)
        return [_note(out / name) for name in NAMES]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="masklab-docs-app-")
    server = subprocess.Popen(
        [sys.executable, "-m", "masklab.cli", "-q", "app", "--data", data, "--sample",
         "--port", str(port), "--backend", "grabcut"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/info", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError("masklab app stopped: "
                                       + server.stderr.read().decode()[-500:]) from None
                time.sleep(0.1)
        shots = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=CHROMIUM_ARGS)
            # bypass_csp: the app forbids eval; Playwright's wait_for_function needs it
            page = browser.new_page(viewport={"width": 1200, "height": 720}, bypass_csp=True)
            page.goto(url + "/")
            page.wait_for_selector("a >> text=sample")
            shots.append(out / "app-projects.png")
            page.screenshot(path=shots[-1])
            page.click("a >> text=sample")
            page.wait_for_selector("a.image-link >> nth=5")
            shots.append(out / "app-images.png")
            page.screenshot(path=shots[-1])
            page.click("a.image-link >> text=astronaut.png")
            page.wait_for_selector("#canvas")
            page.wait_for_selector("#model[data-state=ready]")
            page.wait_for_timeout(300)
            box = page.locator("#canvas").bounding_box()
            # a click on the astronaut's face (image 512 x 512, shown scaled to the canvas)
            page.mouse.click(box["x"] + box["width"] * 0.42, box["y"] + box["height"] * 0.2)
            page.wait_for_function("window.masklabTimings.length >= 1")
            page.keyboard.press("Enter")
            page.wait_for_selector("#save[data-state=saved]")
            page.wait_for_timeout(200)
            shots.append(out / "app-editor.png")
            page.screenshot(path=shots[-1])
            browser.close()
        return shots
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)
