"""The app in headless Chromium (Debian's package, driven by Playwright): create a project,
import images, click an object and see its mask in the screenshot's pixels, undo/redo, reload
and find it, box tool and shortcuts, review, export COCO and score it, names shown as text.

Set MASKLAB_SCREENSHOTS=DIR to keep the screenshots (the README's come from here).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("playwright")
pytest.importorskip("fastapi")

from masklab.app.process import stop_server
from tests.app.helpers import RECTS, make_images, rect_rle
from tests.app.test_server_process import _free_port, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium")
EVIL = '<img src=x onerror="window.pwned=1">'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("app") / "data"
    make_images(data / "imgs")
    port = _free_port()
    proc = start_server(data, port)
    yield f"http://127.0.0.1:{port}", data
    stop_server(proc)


def _pixels(page, shot_name=None):
    from PIL import Image

    png = page.screenshot()
    folder = os.environ.get("MASKLAB_SCREENSHOTS")
    if folder and shot_name:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / shot_name).write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _at(page, x, y):
    return page.evaluate(f"window.masklabEditor.toPage({x}, {y})")


def _tinted(px, page, x, y) -> bool:
    """Is the screen pixel over image pixel (x, y) tinted by a class colour (red, red-brown)?
    The image's own red is 30 (background) or 60 (the green object); tinted it exceeds 90."""
    sx, sy = _at(page, x, y)
    return px[round(sy), round(sx)][0] > 90


def test_annotate_review_export_in_a_browser(server, page, tmp_path):
    url, _ = server
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    # a project whose name is markup: shown as text, never run
    page.fill("input[name=project-name]", EVIL)
    page.fill("input[name=project-classes]", "box, other")
    page.fill("input[name=project-attributes]", "occluded:bool, colour:choice(red|blue)")
    page.click("#create-project")
    page.wait_for_selector("table#images")
    assert page.inner_text("h2") == EVIL
    assert page.evaluate("window.pwned") is None
    page.fill("input[name=folder]", "imgs")
    page.click("#import")
    page.wait_for_selector("a.image-link >> nth=2")
    assert page.locator("a.image-link").all_inner_texts() == sorted(RECTS)
    _pixels(page, "app-project.png")
    page.click("a.image-link >> text=a.png")
    page.wait_for_selector("#canvas")
    page.wait_for_function("window.masklabEditor.imageId() === 1")
    # the line that says what answers the clicks (while SAM loads: GrabCut, and progress)
    page.wait_for_selector("#model[data-state=ready]")
    assert page.inner_text("#model") == "grabcut ready"
    page.wait_for_timeout(300)
    # click the object: the mask appears over it, not around it
    x, y = 80, 60
    before = _pixels(page)
    assert not _tinted(before, page, x, y)
    page.mouse.click(*_at(page, x, y))
    page.wait_for_function("window.masklabTimings.length >= 1")
    page.keyboard.press("Enter")
    page.wait_for_function("window.masklabEditor.objects().length === 1")
    page.wait_for_selector("#save[data-state=saved]")
    px = _pixels(page, "app-editor.png")
    assert _tinted(px, page, x, y) and _tinted(px, page, 45, 35)
    assert not _tinted(px, page, 20, 20) and not _tinted(px, page, 140, 110)
    obj = page.evaluate("window.masklabEditor.objects()")[0]
    assert obj["area"] == 80 * 60 and obj["source"] == "grabcut"
    # the new object is selected: its attributes are edited in the side panel
    page.check("input[data-attr=occluded]")
    page.select_option("select[data-attr=colour]", "blue")
    page.wait_for_selector("#save[data-state=saved]")
    page.wait_for_function("window.masklabEditor.objects()[0].attributes.colour === 'blue'")
    # undo / redo from the keyboard, on the server: the last edit (the colour), then the
    # first two (occluded, the object itself); redo brings them back
    page.keyboard.press("Control+z")
    page.wait_for_function("window.masklabEditor.objects()[0].attributes.colour === undefined")
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    page.wait_for_function("window.masklabEditor.objects().length === 0")
    for _ in range(3):
        page.keyboard.press("Control+Shift+z")
    page.wait_for_function("window.masklabEditor.objects().length === 1 && "
                           "window.masklabEditor.objects()[0].attributes.colour === 'blue'")
    # reload: it was saved
    page.reload()
    page.wait_for_function("window.masklabEditor && window.masklabEditor.imageId() === 1 "
                           "&& window.masklabEditor.objects().length === 1")
    page.wait_for_timeout(300)
    assert _tinted(_pixels(page), page, x, y)
    attrs = page.evaluate("window.masklabEditor.objects()[0].attributes")
    assert attrs == {"occluded": True, "colour": "blue"}
    # next image with "d", the box tool with "b": drag around the object
    page.keyboard.press("d")
    page.wait_for_function("window.masklabEditor.imageId() === 2")
    page.wait_for_timeout(300)
    page.keyboard.press("b")
    page.evaluate("window.masklabTimings.length = 0")
    x0, y0, x1, y1 = RECTS["b.png"]
    page.mouse.move(*_at(page, x0 - 6, y0 - 6))
    page.mouse.down()
    page.mouse.move(*_at(page, x1 + 6, y1 + 6), steps=5)
    page.mouse.up()
    page.wait_for_function("window.masklabTimings.length >= 1")
    page.keyboard.press("2")  # the second class for this one
    page.keyboard.press("Enter")
    page.wait_for_function("window.masklabEditor.objects().length === 1")
    o = page.evaluate("window.masklabEditor.objects()")[0]
    assert o["class_id"] == 2 and o["area"] == (x1 - x0) * (y1 - y0)
    # review: reject with a comment (a dialog), then approve
    page.once("dialog", lambda d: d.accept("edges <b>too</b> loose"))
    page.click("#reject")
    page.wait_for_selector("#image-status.status-rejected")
    assert page.inner_text("#image-comment") == "edges <b>too</b> loose"
    page.click("#approve")
    page.wait_for_selector("#image-status.status-approved")
    page.keyboard.press("a")
    page.wait_for_function("window.masklabEditor.imageId() === 1")
    # alpha matte of the object: select it, the matte tool, solve, a cut-out on a checkerboard
    page.wait_for_timeout(200)
    page.keyboard.press("v")
    page.mouse.click(*_at(page, x, y))
    page.keyboard.press("m")
    page.click("#solve")
    page.wait_for_function("document.getElementById('cutout').naturalWidth > 0")
    assert page.evaluate("document.getElementById('cutout').naturalWidth") >= 80
    assert page.get_attribute("#alpha-link", "href").endswith("/alpha")
    _pixels(page, "app-matte.png")
    # export COCO from the project page and score it with `masklab eval coco`
    page.goto(url + "/#/p/1")
    page.wait_for_selector("button[data-format=coco]")
    with page.expect_download() as dl:
        page.click("button[data-format=coco]")
    export = tmp_path / "export.json"
    dl.value.save_as(export)
    coco = json.loads(export.read_text())
    cats = {c["name"]: c["id"] for c in coco["categories"]}
    ids = {i["file_name"]: i["id"] for i in coco["images"]}
    res = [{"image_id": ids["a.png"], "category_id": cats["box"], "score": 1.0,
            "segmentation": rect_rle(*RECTS["a.png"])},
           {"image_id": ids["b.png"], "category_id": cats["other"], "score": 1.0,
            "segmentation": rect_rle(*RECTS["b.png"])}]
    (tmp_path / "res.json").write_text(json.dumps(res))
    from click.testing import CliRunner

    from masklab.cli import main

    r = CliRunner().invoke(main, ["eval", "coco", str(export), str(tmp_path / "res.json"),
                                  "--json", str(tmp_path / "ap.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ap.json").read_text())["stats"][0] == pytest.approx(1.0)
    assert "approved 1" in page.inner_text("p.muted")
    assert errors == []


def test_paged_filtered_list_and_next_under_the_filter(server, page):
    """The project page shows one page of a 230-image project with counts, pages through it,
    filters by status and name, and the editor's next / previous stay in the filtered list."""
    from PIL import Image

    from tests.app.test_server_process import _client

    url, data = server
    folder = data / "many"
    folder.mkdir()
    for k in range(230):
        Image.new("RGB", (8, 6), (k, 0, 0)).save(folder / f"m{k:03d}.png")
    port = int(url.rsplit(":", 1)[1])
    c = _client(port)
    p = c.post("/api/projects", json={"name": "many", "classes": ["x"]}).json()
    c.post(f"/api/projects/{p['id']}/import", json={"folder": "many"}).raise_for_status()
    ids = {i["file_name"]: i["id"] for i in c.get(
        f"/api/projects/{p['id']}/images", params={"limit": 500}).json()["items"]}
    done = [f"m{k:03d}.png" for k in range(0, 230, 7)]
    for name in done:
        c.put(f"/api/images/{ids[name]}/status", json={"status": "done"}).raise_for_status()
    page.goto(f"{url}/#/p/{p['id']}")
    page.wait_for_selector("#page-info")
    assert page.inner_text("#page-info") == "1–100 of 230"
    assert page.locator("a.image-link").count() == 100
    assert f"done {len(done)}" in page.inner_text("#counts")
    page.click("#page-next")
    page.wait_for_function("document.querySelector('#page-info').textContent.startsWith('101')")
    assert page.locator("a.image-link").first.inner_text() == "m100.png"
    page.select_option("select[name=status]", "done")
    page.wait_for_function(f"document.querySelector('#page-info').textContent === "
                           f"'1–{len(done)} of {len(done)}'")
    assert page.locator("a.image-link").all_inner_texts() == done
    page.fill("input[name=q]", "M01")
    page.click("#filters button[type=submit]")
    page.wait_for_function("document.querySelectorAll('a.image-link').length === 1")
    assert page.locator("a.image-link").all_inner_texts() == ["m014.png"]
    page.fill("input[name=q]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_function(f"document.querySelectorAll('a.image-link').length === {len(done)}")
    page.click("a.image-link >> text=m007.png")
    page.wait_for_function(f"window.masklabEditor.imageId() === {ids['m007.png']}")
    page.keyboard.press("d")  # the next image under the filter: m014, not m008
    page.wait_for_function(f"window.masklabEditor.imageId() === {ids['m014.png']}")
    page.keyboard.press("a")
    page.wait_for_function(f"window.masklabEditor.imageId() === {ids['m007.png']}")
    page.keyboard.press("a")
    page.wait_for_function(f"window.masklabEditor.imageId() === {ids['m000.png']}")
    assert "status=done" in page.evaluate("location.hash")


def test_jobs_panel_prelabel_cancel_and_review(server, page):
    """Pre-labelling from the project page runs as a job (progress in the jobs panel), a
    second one is cancelled from the panel, and the proposals are reviewed in the editor
    (y accepts one, Shift+N rejects the rest) and on the project page."""
    from tests.app.test_server_process import _client

    url, data = server
    make_images(data / "rev", {f"r{k:02d}.png": (20 + k, 10, 100, 80) for k in range(60)})
    c = _client(int(url.rsplit(":", 1)[1]))
    p = c.post("/api/projects", json={"name": "rev", "classes": ["thing", "other"]}).json()
    c.post(f"/api/projects/{p['id']}/import", json={"folder": "rev"}).raise_for_status()
    page.goto(f"{url}/#/p/{p['id']}?q=r0")
    page.wait_for_selector("#prelabel")
    page.select_option("select[name=prelabel-source]", "everything")
    page.select_option("select[name=prelabel-class]", label="other")
    page.select_option("select[name=prelabel-scope]", "filter")
    page.click("#prelabel-start")
    page.wait_for_selector("#jobs tr[data-state=done]", timeout=60000)
    assert "pre-label (everything)" in page.inner_text("#jobs")
    page.wait_for_selector("#review")  # the page reloads: proposals to review
    # a second job over all 60 images, cancelled from the panel
    page.select_option("select[name=prelabel-source]", "everything")
    page.select_option("select[name=prelabel-class]", label="other")
    page.select_option("select[name=prelabel-scope]", "all")
    page.click("#prelabel-start")
    page.wait_for_selector("#jobs tr[data-state=running] .job-cancel", timeout=30000)
    page.click("#jobs tr[data-state=running] .job-cancel")
    page.wait_for_selector("#jobs tr[data-state=cancelled]", timeout=30000)
    jobs = c.get(f"/api/projects/{p['id']}/jobs").json()
    assert [j["state"] for j in jobs] == ["cancelled", "done"]
    assert jobs[0]["done"] < 60 and jobs[1]["done"] == 10
    # review in the editor
    first = c.get(f"/api/projects/{p['id']}/images", params={"q": "r00"}).json()["items"][0]
    page.goto(f"{url}/#/i/{first['id']}?proposals=true")
    page.wait_for_function(f"window.masklabEditor.imageId() === {first['id']}")
    page.wait_for_selector("#objects li.proposal")
    objs = page.evaluate("window.masklabEditor.objects()")
    assert objs and all(o["proposal"] and o["class_id"] == 2 for o in objs)
    page.click("#objects li.proposal >> nth=0")
    page.keyboard.press("y")
    page.wait_for_function("window.masklabEditor.objects().filter(o => !o.proposal).length === 1")
    page.keyboard.press("Shift+N")
    page.wait_for_function("window.masklabEditor.objects().length === 1")
    assert not page.evaluate("window.masklabEditor.objects()[0].proposal")
    # the rest, on the project page: accept every proposal of class "other"
    page.goto(f"{url}/#/p/{p['id']}")
    page.wait_for_selector("#review")
    page.select_option("select[name=review-class]", label="other")
    page.click("#review-accept")
    page.wait_for_function("!document.querySelector('#review')")
    assert c.get(f"/api/projects/{p['id']}").json()["with_proposals"] == 0


def test_train_panel_live_curve_versions_and_queue(server, page):
    """Training from the project page: the job runs, the live plot shows the loss and the
    validation mIoU, the version appears with its metric, pre-labelling with it fills the
    queue's uncertainty, and "least confident first" orders the list and the editor."""
    from tests.app.test_server_process import _client

    url, data = server
    make_images(data / "trn", {f"t{k:02d}.png": (10 + 3 * k, 8 + k, 60 + 2 * k, 50 + k)
                               for k in range(14)})
    c = _client(int(url.rsplit(":", 1)[1]))
    p = c.post("/api/projects", json={"name": "trn", "classes": ["thing", "other"]}).json()
    c.post(f"/api/projects/{p['id']}/import", json={"folder": "trn"}).raise_for_status()
    ims = c.get(f"/api/projects/{p['id']}/images").json()["items"]
    for k, im in enumerate(ims[:10]):
        x0, y0, x1, y1 = (10 + 3 * k, 8 + k, 60 + 2 * k, 50 + k)
        c.post(f"/api/images/{im['id']}/annotations", json={
            "class_id": 1, "mask": rect_rle(x0, y0, x1, y1)}).raise_for_status()
        c.put(f"/api/images/{im['id']}/status", json={"status": "done"}).raise_for_status()
    page.goto(f"{url}/#/p/{p['id']}")
    page.wait_for_selector("#train")
    page.fill("input[name=train-epochs]", "4")
    page.fill("input[name=train-threads]", "1")
    page.fill("input[name=train-options]",
              '{"model_config": {"depth": 2, "width": 8}, "crop": 32, "val_percent": 25, '
              '"lr": 0.01}')
    page.click("#train-start")
    page.wait_for_selector("#versions tr[data-model]", timeout=120000)
    page.wait_for_selector("#train-plot polyline.loss", state="attached")
    page.wait_for_selector("#train-plot polyline.miou", state="attached")
    assert "v1" in page.inner_text("#versions")
    page.wait_for_function("document.querySelector('#jobs').textContent.includes('model v1')")
    page.click("#versions .prelabel-with")
    page.wait_for_function("[...document.querySelectorAll('#jobs tr')].some("
                           "r => r.textContent.includes('pre-label') && "
                           "r.dataset.state === 'done')", timeout=60000)
    page.select_option("select[name=queue-order]", "uncertain")
    page.wait_for_selector("select[name=sort] option[value='-uncertain']:checked", state="attached")
    listed = page.eval_on_selector_all("#images a.image-link", "as => as.map(a => a.textContent)")
    api_order = [i["file_name"] for i in c.get(f"/api/projects/{p['id']}/images",
                                               params={"sort": "-uncertain"}).json()["items"]]
    assert listed == api_order and set(listed[:4]) == {im["file_name"] for im in ims[10:]}
