"""The browser's prompt decoder (onnxruntime-web in a Web Worker, Debian's Chromium through
Playwright) against the server's decoder on the same fp16 embedding and tiny SAM / SAM 2.1
weights: clicks, a box (one dragged from the margin, clipped to the image) and a mask prompt
give the same masks (IoU >= 0.99). Skipped without Chromium or without the vendored
onnxruntime-web (`make setup` installs it from the npm registry)."""

from __future__ import annotations

import pytest

pytest.importorskip("playwright")
pytest.importorskip("transformers")

from masklab import rle
from masklab.app.process import stop_server
from masklab.app.server import STATIC
from tests.app.helpers import RECTS, make_images
from tests.app.test_browser import CHROMIUM, _at
from tests.app.test_server_process import _client, _free_port, start_server

ORT = STATIC / "vendor" / "onnxruntime-web" / "ort-wasm-simd-threaded.wasm"
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium"),
              pytest.mark.skipif(not ORT.is_file(), reason="onnxruntime-web not installed "
                                 "(make setup)")]


def _iou(a: dict, b: dict) -> float:
    x, y = rle.decode([a])[0], rle.decode([b])[0]
    union = (x | y).sum()
    return 1.0 if union == 0 else float((x & y).sum() / union)


@pytest.fixture(scope="module", params=["sam2", "sam"])
def sam_server(request, tmp_path_factory):
    from tests.interactive.test_sam import _tiny_family, _tiny_sam

    data = tmp_path_factory.mktemp(f"dec-{request.param}") / "data"
    make_images(data / "imgs")
    model = data.parent / "model"
    (_tiny_sam if request.param == "sam" else lambda f: _tiny_family("sam2", f))(model)
    port = _free_port()
    proc = start_server(data, port, "--backend", str(model))
    yield f"http://127.0.0.1:{port}", port
    stop_server(proc)


def _server_mask(c, image_id, **body) -> dict:
    r = c.post(f"/api/images/{image_id}/segment", json=body)
    r.raise_for_status()
    return r.json()["masks"][0]["mask"]


def test_browser_decoder_equals_server_decoder(sam_server, page):
    url, port = sam_server
    c = _client(port)
    p = c.post("/api/projects", json={"name": "d", "classes": ["box"]}).json()
    c.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"}).raise_for_status()
    img = c.get(f"/api/projects/{p['id']}/images").json()["items"][0]
    info = c.get("/api/decoder").json()
    assert info["available"] and info["url"].endswith(".onnx")
    emb = c.get(f"/api/images/{img['id']}/embedding")
    assert emb.headers["content-type"] == "application/octet-stream"
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/#/i/{img['id']}")
    page.wait_for_selector("#decoder[data-path=browser]", timeout=60000)
    assert page.evaluate("crossOriginIsolated")  # COOP + COEP: the decoder may use threads
    assert "in this browser" in page.inner_text("#decoder")
    ious = []
    # clicks: one positive, then a negative one
    for k, (x, y, neg) in enumerate([(80, 60, False), (50, 40, True)]):
        page.mouse.click(*_at(page, x, y), button="right" if neg else "left")
        page.wait_for_function(f"window.masklabTimings.length >= {k + 1}")
        assert page.evaluate("window.masklabLastDecode.path") == "browser"
        pend = page.evaluate("window.masklabEditor.pending()")
        got = page.evaluate("window.masklabEditor.preview()")
        ref = _server_mask(c, img["id"], points=pend["points"], labels=pend["labels"])
        assert 0 < rle.area([ref])[0] < img["width"] * img["height"]
        ious.append(_iou(got, ref))
    page.keyboard.press("Enter")  # keep it: the object for the mask prompt below
    page.wait_for_function("window.masklabEditor.objects().length === 1")
    # a box dragged from the dark margin outside the image: clipped to the image
    page.keyboard.press("b")
    x0, y0, x1, y1 = RECTS[img["file_name"]]
    n = page.evaluate("window.masklabTimings.length")
    left, top = _at(page, 0, 0)
    cr = page.evaluate("(() => { const r = document.querySelector('#canvas')"
                       ".getBoundingClientRect(); return [r.left, r.top]; })()")
    if left - cr[0] >= 12:  # the margin is beside the image
        start = (left - 8, _at(page, 0, y0 - 5)[1])
    else:  # above it
        start = (_at(page, x0 - 5, 0)[0], top - 8)
    assert start[0] >= cr[0] and start[1] >= cr[1]
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*_at(page, x1 + 6, y1 + 6), steps=4)
    page.mouse.up()
    page.wait_for_function(f"window.masklabTimings.length > {n}")
    pend = page.evaluate("window.masklabEditor.pending()")
    assert 0 in pend["box"][:2] and pend["box"][2] <= img["width"]
    ref = _server_mask(c, img["id"], box=pend["box"])
    ious.append(_iou(page.evaluate("window.masklabEditor.preview()"), ref))
    page.keyboard.press("Escape")
    # the saved object as a mask prompt (refine, "f") with a new click
    page.click("#objects li >> nth=0")
    page.keyboard.press("f")
    n = page.evaluate("window.masklabTimings.length")
    page.mouse.click(*_at(page, 100, 80))
    page.wait_for_function(f"window.masklabTimings.length > {n}")
    pend = page.evaluate("window.masklabEditor.pending()")
    assert pend["refine"] is not None
    ann = c.get(f"/api/images/{img['id']}/annotations").json()["annotations"][0]
    ref = _server_mask(c, img["id"], points=pend["points"], labels=pend["labels"],
                       mask=ann["mask"])
    ious.append(_iou(page.evaluate("window.masklabEditor.preview()"), ref))
    assert min(ious) >= 0.99, ious
    assert not errors, errors
