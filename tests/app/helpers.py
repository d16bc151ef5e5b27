"""Shared pieces of the app tests: synthetic images with known objects, a CSRF-aware client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# each image: a green rectangle (the object) on a dark, slightly noisy background
RECTS = {"a.png": (40, 30, 120, 90), "b.png": (20, 20, 70, 100), "c.png": (90, 10, 150, 60)}
SIZE = (120, 160)  # (h, w)


def make_images(folder: Path, rects=RECTS) -> dict[str, np.ndarray]:
    """Write the images; return each one's true object mask."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    truth = {}
    for name, (x0, y0, x1, y1) in rects.items():
        img = np.full((*SIZE, 3), 30, np.uint8)
        img[y0:y1, x0:x1] = (60, 200, 60)  # green: the red class tint shows
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / name)
        m = np.zeros(SIZE, bool)
        m[y0:y1, x0:x1] = True
        truth[name] = m
    return truth


def rect_rle(x0, y0, x1, y1, size=SIZE) -> dict:
    from masklab import rle

    m = np.zeros(size, bool)
    m[y0:y1, x0:x1] = True
    return rle.encode(m)[0]


class Api:
    """A TestClient (or httpx client) that sends the CSRF header and raises on errors."""

    def __init__(self, client, csrf: str | None = None):
        self.c = client
        if csrf is None:
            csrf = client.get("/api/session").json()["csrf"]
        self.h = {"X-CSRF-Token": csrf}

    def __getattr__(self, method):
        def call(url, expect=200, **kw):
            if method != "get":
                kw.setdefault("headers", {}).update(self.h)
            r = getattr(self.c, method)(url, **kw)
            assert r.status_code == expect, (r.status_code, r.text)
            return r.json() if "json" in r.headers.get("content-type", "") else r
        return call
