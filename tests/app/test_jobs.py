"""Background jobs through the API: import with a corrupt file, export downloaded when done,
pre-labelling as proposals (text pipeline with given boxes, segment-everything) that never
repeat what is there, review (accept / reject), cancel, and claims that go to one worker.
The PostgreSQL runs import these tests (test_postgres.py); a kill -9 mid-job is in
test_server_process.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from masklab import rle
from masklab.app import create_app
from tests.app.helpers import RECTS, Api, make_images


@pytest.fixture
def app_env(tmp_path):
    truth = make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", job_stale=2.0)
    with TestClient(app) as c:
        yield Api(c), truth, tmp_path


def wait_job(api, jid, timeout=60.0, states=("done", "failed", "cancelled")) -> dict:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        j = api.get(f"/api/jobs/{jid}")
        if j["state"] in states:
            return j
        time.sleep(0.05)
    raise AssertionError(f"job {jid} still {j['state']} after {timeout} s: {j}")


def _project(api, name="p", classes=("box", "other")):
    return api.post("/api/projects", json={"name": name, "classes": list(classes)})


def test_import_job_skips_a_corrupt_image_and_export_job_downloads(app_env):
    api, truth, tmp = app_env
    folder = tmp / "data" / "many"
    make_images(folder, {f"i{k:02d}.png": RECTS["a.png"] for k in range(24)})
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    p = _project(api)
    job = api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "import",
                                                         "params": {"folder": "many"}})
    assert job["state"] in ("queued", "running") and job["kind"] == "import"
    j = wait_job(api, job["id"])
    assert j["state"] == "done", j
    assert j["done"] == j["total"] == 25 and j["failed"] == 1
    assert j["result"] == {"added": 24}
    assert len(j["errors"]) == 1 and j["errors"][0].startswith("broken.png: ")
    assert api.get(f"/api/projects/{p['id']}")["images"] == 24
    # importing again adds nothing (names already in the project)
    j2 = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "import", "params": {"folder": "many"}})["id"])
    assert j2["result"] == {"added": 0}
    ids = {i["file_name"]: i["id"] for i in api.get(
        f"/api/projects/{p['id']}/images", params={"limit": 500})["items"]}
    api.post(f"/api/images/{ids['i03.png']}/annotations",
             json={"class_id": 1, "mask": rle.encode(truth["a.png"])[0]})
    j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "export", "params": {"format": "coco"}})["id"])
    assert j["state"] == "done" and j["done"] == j["total"] == 24, j
    data = api.c.get(j["result"]["url"]).json()
    assert len(data["images"]) == 24 and len(data["annotations"]) == 1
    m = rle.decode([data["annotations"][0]["segmentation"]])[0]
    np.testing.assert_array_equal(m, truth["a.png"])
    listed = api.get(f"/api/projects/{p['id']}/jobs")
    assert [x["id"] for x in listed][:1] == [j["id"]] and len(listed) == 3
    # bad requests fail at once, not later in the job
    api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "import", "params": {}},
             expect=400)
    api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "mine"}, expect=400)
    api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "import", "params": {"folder": "/etc"}}, expect=403)
    api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "export", "params": {"format": "pdf"}}, expect=400)
    api.get("/api/jobs/999", expect=404)


def _coco_boxes(path, names, boxes):
    """A COCO file of boxes (the ``boxes_from`` detector of ``masklab label``)."""
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "box"}]}
    for k, (name, (x0, y0, x1, y1)) in enumerate(zip(names, boxes, strict=True), 1):
        data["images"].append({"id": k, "file_name": name, "height": 120, "width": 160})
        data["annotations"].append({"id": k, "image_id": k, "category_id": 1, "iscrowd": 0,
                                    "bbox": [x0 - 4, y0 - 4, x1 - x0 + 8, y1 - y0 + 8],
                                    "area": (x1 - x0) * (y1 - y0)})
    path.write_text(json.dumps(data))


def test_prelabel_text_pipeline_proposals_review_and_export(app_env):
    api, truth, tmp = app_env
    p = _project(api)
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    ids = {i["file_name"]: i["id"] for i in api.get(f"/api/projects/{p['id']}/images")["items"]}
    # a person already drew b.png's object: its proposal is not added again
    api.post(f"/api/images/{ids['b.png']}/annotations",
             json={"class_id": 1, "mask": rle.encode(truth["b.png"])[0]})
    # c.png's file is damaged after import: reported, the job goes on
    (tmp / "data" / "imgs" / "c.png").write_bytes(b"not an image")
    _coco_boxes(tmp / "data" / "boxes.json", list(RECTS), list(RECTS.values()))
    job = api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "text", "classes": ["box"],
                                       "boxes_from": "boxes.json"}})
    assert job["total"] == 3
    j = wait_job(api, job["id"])
    assert j["state"] == "done", j
    assert j["done"] == 3 and j["failed"] == 1 and j["errors"][0].startswith("c.png: ")
    assert j["result"]["proposals"] == 1 and j["result"]["duplicates_dropped"] == 1
    anns = api.get(f"/api/images/{ids['a.png']}/annotations")["annotations"]
    assert len(anns) == 1 and anns[0]["proposal"] and anns[0]["source"] == "text"
    m = rle.decode([anns[0]["mask"]])[0]
    inter = (m & truth["a.png"]).sum()
    assert inter / (m | truth["a.png"]).sum() > 0.9  # GrabCut in the given box
    lst = api.get(f"/api/projects/{p['id']}/images", params={"proposals": "true"})
    assert [i["file_name"] for i in lst["items"]] == ["a.png"]
    # proposals are not exported until accepted (unless asked for)
    out = api.post(f"/api/projects/{p['id']}/export", json={"format": "coco"})
    assert len(api.c.get(out["url"]).json()["annotations"]) == 1
    out = api.post(f"/api/projects/{p['id']}/export", json={"format": "coco",
                                                            "proposals": True})
    assert len(api.c.get(out["url"]).json()["annotations"]) == 2
    api.patch(f"/api/annotations/{anns[0]['id']}", json={"proposal": False})
    assert api.get(f"/api/images/{ids['a.png']}")["proposals"] == 0
    assert api.get(f"/api/images/{ids['a.png']}")["annotations"] == 1
    out = api.post(f"/api/projects/{p['id']}/export", json={"format": "coco"})
    assert len(api.c.get(out["url"]).json()["annotations"]) == 2
    # running it again adds nothing: everything it finds is there
    j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "text", "classes": ["box"],
                                       "boxes_from": "boxes.json"},
        "filter": {"q": "a.png"}})["id"])
    assert j["total"] == 1 and j["result"]["proposals"] == 0
    # bad parameters are refused before queueing
    for params, code in [({"source": "magic"}, 400), ({"classes": ["zebra"]}, 400),
                         ({"source": "everything"}, 400), ({"source": "model"}, 400),
                         ({"boxes_from": "/etc/passwd"}, 403)]:
        api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "prelabel",
                                                        "params": params}, expect=code)
    api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {}, "filter": {"status": "approved"}}, expect=400)


def test_prelabel_everything_then_review_in_bulk_and_cancel(app_env):
    api, _, tmp = app_env
    folder = tmp / "data" / "many"
    make_images(folder, {f"i{k:02d}.png": RECTS["a.png"] for k in range(40)})
    p = _project(api)
    wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "import", "params": {"folder": "many"}})["id"])
    j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "everything", "class_id": 2, "limit": 3},
        "filter": {"q": "i0"}})["id"])
    assert j["state"] == "done" and j["total"] == 10 and j["failed"] == 0, j
    first = api.get(f"/api/projects/{p['id']}/images", params={"q": "i00"})["items"][0]
    props = api.get(f"/api/images/{first['id']}/annotations")["annotations"]
    assert 1 <= len(props) <= 3 and all(a["proposal"] and a["class_id"] == 2 for a in props)
    # review: accept every proposal of a class above a score, reject the rest
    r = api.post(f"/api/projects/{p['id']}/proposals", json={
        "action": "accept", "class_id": 2, "min_score": 0.0, "image_id": first["id"]})
    assert r["accepted"] == len(props) and r["rejected"] == 0
    anns = api.get(f"/api/images/{first['id']}/annotations")["annotations"]
    assert not any(a["proposal"] for a in anns)
    r = api.post(f"/api/projects/{p['id']}/proposals", json={"action": "reject"})
    assert r["rejected"] == j["result"]["proposals"] - len(props)
    assert api.get(f"/api/projects/{p['id']}")["with_proposals"] == 0
    # cancel: the job stops after its current image; what it did stays
    job = api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "everything", "class_id": 2}})
    assert job["total"] == 40
    t = time.monotonic()
    while api.get(f"/api/jobs/{job['id']}")["done"] < 2 and time.monotonic() - t < 30:
        time.sleep(0.02)
    api.post(f"/api/jobs/{job['id']}/cancel")
    j = wait_job(api, job["id"])
    assert j["state"] == "cancelled" and 2 <= j["done"] < 40, j
    done = j["done"]
    time.sleep(0.3)
    assert api.get(f"/api/jobs/{job['id']}")["done"] == done
    assert api.get(f"/api/projects/{p['id']}/images", params={"proposals": "true"}
                   )["total"] <= done


def check_claims(stores) -> None:
    """12 export jobs on ``stores[0]``'s database, one runner of 2 threads per store (as one
    per app process): every job done, each run once, by one of the runners."""
    from masklab.app import db
    from masklab.app.jobs import JobRunner

    store = stores[0]
    p = store.create_project("p", ["box"])
    store.import_folder(p["id"], "imgs")
    jobs = [store.create_job(p["id"], "export", {"format": "coco"})["id"] for _ in range(12)]
    runners = [JobRunner(s, None, None, threads=2, poll=0.01) for s in stores]
    for r in runners:
        r.start()
    try:
        t = time.monotonic()
        while time.monotonic() - t < 60 and any(
                store.job(j)["state"] != "done" for j in jobs):
            time.sleep(0.05)
    finally:
        for r in runners:
            r.stop()
    got = [store.job(j) for j in jobs]
    assert all(g["state"] == "done" and g["runs"] == 1 for g in got), got
    with store.Session() as s:
        workers = {s.get(db.Job, j).worker for j in jobs}
    assert workers <= {r.worker_id for r in runners}


def test_claims_go_to_one_worker(tmp_path):
    """Two runners (as two app processes would) over one database: each job runs once."""
    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", job_threads=0)
    check_claims([app.state.store, app.state.store])


def test_a_stale_running_job_is_taken_over(tmp_path):
    """A job whose worker stopped sending heartbeats (its process died) is claimed again and
    goes on from its committed progress."""
    from masklab.app.jobs import JobRunner

    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", job_threads=0)
    store = app.state.store
    p = store.create_project("p", ["box"])
    store.import_folder(p["id"], "imgs")
    ids = store.image_ids(p["id"])
    jid = store.create_job(p["id"], "prelabel", {"source": "everything", "class_id": 1,
                                                 "limit": 2}, image_ids=ids)["id"]
    assert store.claim_job("dead-worker", stale=30) == jid
    with store.transaction() as s:  # the dead worker had finished the first image
        assert store.finish_item(s, jid, 0)
        store.job_progress(jid, "dead-worker", add=1, s=s)
    assert store.claim_job("other", stale=30) is None  # its heartbeat is fresh
    time.sleep(1.1)
    r = JobRunner(store, app.state.segmenter, app.state.config, stale=1.0, poll=0.05)
    r.start()
    try:
        t = time.monotonic()
        while store.job(jid)["state"] != "done" and time.monotonic() - t < 60:
            time.sleep(0.05)
    finally:
        r.stop()
    j = store.job(jid)
    assert j["state"] == "done" and j["runs"] == 2 and j["done"] == 3, j
    assert store.item_counts(jid) == {"done": 3}
    first = store.image(ids[0])
    assert first["proposals"] == 0  # done by the dead worker (which wrote nothing here)
    assert all(store.image(i)["proposals"] > 0 for i in ids[1:])


def test_prelabel_with_a_semantic_model_of_the_registry(app_env):
    """A semantic checkpoint (tiny U-Net) as the source: one proposal per class present that
    the project has (by name), equal to the model's own prediction; other classes reported."""
    import torch

    from masklab.io.images import read_image
    from masklab.models.semantic import load_semantic_model, save_checkpoint
    from masklab.tasks.semantic import predict_semantic

    api, _, tmp = app_env
    images = [read_image(f) for f in sorted((tmp / "data" / "imgs").glob("*.png"))]
    for seed in range(50):  # random weights that predict "Box" somewhere
        torch.manual_seed(seed)
        model = load_semantic_model("unet", weights=None, num_classes=3,
                                    class_names=["background", "Box", "zebra"],
                                    config={"depth": 2, "width": 4})
        head = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        with torch.no_grad():  # random but decisive class scores
            head.weight.normal_(0, 3)
            head.bias.normal_(0, 1)
        if any((predict_semantic(model, im).labels == 1).any() for im in images):
            break
    save_checkpoint(tmp / "data" / "unet", model, {})
    p = _project(api)
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "model", "model": "unet"}})["id"])
    assert j["state"] == "done" and j["done"] == 3, j
    zebra = False
    for im in api.get(f"/api/projects/{p['id']}/images")["items"]:
        want = predict_semantic(model, read_image(tmp / "data" / "imgs" / im["file_name"]))
        zebra |= bool((want.labels == 2).any())
        anns = api.get(f"/api/images/{im['id']}/annotations")["annotations"]
        assert [a["class_id"] for a in anns] == ([1] if (want.labels == 1).any() else [])
        for a in anns:
            np.testing.assert_array_equal(rle.decode([a["mask"]])[0], want.labels == 1)
    assert j["result"].get("classes_not_in_project", []) == (["zebra"] if zebra else [])
    assert j["result"]["proposals"] >= 1


def test_prelabel_with_a_panoptic_model(app_env):
    """A universal panoptic model (tiny Mask2Former, local weights) as the source: its
    segments, things and stuff, become proposals of the project's classes of the same name."""
    from masklab.io.images import read_image
    from masklab.tasks.panoptic import load_panoptic_predictor
    from tests.models.test_universal_models import NAMES, _save

    api, _, tmp = app_env
    _save("mask2former", tmp / "data" / "m2f")
    name = NAMES["mask2former"]
    ref = load_panoptic_predictor(name, weights=tmp / "data" / "m2f", threshold=0.5)
    cats = {c["id"]: c["name"] for c in ref.categories()}
    p = api.post("/api/projects", json={"name": "pan", "classes": sorted(set(cats.values()))})
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    by_name = {c["name"]: c["id"] for c in api.get(f"/api/projects/{p['id']}")["classes"]}
    j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "model", "model": name, "weights": "m2f",
                                       "score_threshold": 0.5}})["id"], timeout=120)
    assert j["state"] == "done" and j["done"] == 3 and j["failed"] == 0, j
    total = 0
    for im in api.get(f"/api/projects/{p['id']}/images")["items"]:
        ids, segs = ref.predict_panoptic([read_image(tmp / "data" / "imgs" /
                                                     im["file_name"])])[0]
        want = sorted((by_name[cats[s["category_id"]]], int((ids == s["id"]).sum()))
                      for s in segs if (ids == s["id"]).any())
        anns = api.get(f"/api/images/{im['id']}/annotations")["annotations"]
        got = sorted((a["class_id"], a["area"]) for a in anns)
        # duplicates of one class (IoU >= 0.5) are dropped; panoptic segments never overlap
        assert got == want and all(a["proposal"] for a in anns)
        total += len(anns)
    assert total == j["result"]["proposals"] > 0


def test_import_and_export_jobs_in_the_interchange_formats(app_env):
    """Each interchange format as an export job, imported back as a job into a new project:
    the same masks and classes (a round trip through the app)."""
    import zipfile

    api, truth, tmp = app_env
    p = _project(api, "src", ("box", "other"))
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    ims = api.get(f"/api/projects/{p['id']}/images")["items"]
    for im in ims:
        api.post(f"/api/images/{im['id']}/annotations", json={
            "class_id": 1, "mask": rle.encode(truth[im["file_name"]])[0]})
    want = {im["file_name"]: truth[im["file_name"]] for im in ims}
    for fmt in ("labelme", "cvat", "labelstudio", "voc"):
        j = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
            "kind": "export", "params": {"format": fmt}})["id"])
        assert j["state"] == "done", j
        data = api.c.get(j["result"]["url"]).content
        out = tmp / "data" / f"exp-{fmt}"
        zpath = tmp / f"{fmt}.zip"
        zpath.write_bytes(data)
        with zipfile.ZipFile(zpath) as z:
            z.extractall(out)
        src = {"cvat": out / "annotations.xml", "labelstudio": out / "tasks.json"}.get(fmt, out)
        q = _project(api, f"dst-{fmt}", ("box",))
        j = wait_job(api, api.post(f"/api/projects/{q['id']}/jobs", json={
            "kind": "import-coco", "params": {"coco": str(src.relative_to(tmp / "data")),
                                              "format": fmt,
                                              "images_dir": "imgs"}})["id"])
        assert j["state"] == "done" and j["failed"] == 0, (fmt, j)
        got = {}
        for im in api.get(f"/api/projects/{q['id']}/images")["items"]:
            anns = api.get(f"/api/images/{im['id']}/annotations")["annotations"]
            assert len(anns) == 1, (fmt, im["file_name"], len(anns))
            got[Path(im["file_name"]).name] = rle.decode([anns[0]["mask"]])[0]
        for name, m in want.items():
            np.testing.assert_array_equal(got[Path(name).name], m, err_msg=fmt)
    r = api.post(f"/api/projects/{p['id']}/jobs", expect=400, json={
        "kind": "import-coco", "params": {"coco": "imgs", "format": "nope"}})
    assert "format must be one of" in r["detail"]
