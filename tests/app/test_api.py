"""The app's REST API through FastAPI's test client: projects, imports, mask-native annotations,
versions, server-side undo/redo, review, export/import round trips, bad input, accounts."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from masklab import rle
from masklab.app import create_app
from tests.app.helpers import RECTS, SIZE, Api, make_images, rect_rle


@pytest.fixture
def app_env(tmp_path):
    truth = make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut")
    with TestClient(app) as c:
        yield Api(c), truth, tmp_path


def _project(api, name="p", classes=("box", "other")):
    p = api.post("/api/projects", json={"name": name, "classes": list(classes)})
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    return p, {i["file_name"]: i for i in api.get(f"/api/projects/{p['id']}/images")["items"]}


def _masks(api, image_id):
    anns = api.get(f"/api/images/{image_id}/annotations")["annotations"]
    return {a["id"]: rle.decode([a["mask"]])[0] for a in anns}


def test_annotations_versions_and_undo_redo(app_env):
    api, truth, _ = app_env
    _, imgs = _project(api)
    img = imgs["a.png"]
    assert (img["height"], img["width"]) == SIZE
    iid = img["id"]
    # click -> mask (GrabCut): the red rectangle exactly
    seg = api.post(f"/api/images/{iid}/segment", json={"points": [[80, 60]], "labels": [1]})
    m = rle.decode([seg["masks"][0]["mask"]])[0]
    np.testing.assert_array_equal(m, truth["a.png"])
    r1 = api.post(f"/api/images/{iid}/annotations",
                  json={"class_id": 1, "mask": seg["masks"][0]["mask"], "version": 0,
                        "source": "grabcut"})
    a = r1["annotation"]
    assert r1["version"] == 1 and a["area"] == truth["a.png"].sum()
    assert a["bbox"] == [40, 30, 80, 60]
    assert api.get(f"/api/images/{iid}")["status"] == "in_progress"
    # a stale version is refused: no lost update
    api.post(f"/api/images/{iid}/annotations",
             json={"class_id": 1, "mask": rect_rle(0, 0, 5, 5), "version": 0}, expect=409)
    small = rect_rle(50, 40, 60, 50)
    api.patch(f"/api/annotations/{a['id']}", json={"mask": small, "class_id": 2, "version": 1})
    second = api.post(f"/api/images/{iid}/annotations",
                      json={"class_id": 1, "mask": rect_rle(0, 0, 10, 10), "version": 2})
    api.delete(f"/api/annotations/{second['annotation']['id']}?version=3")
    states = []
    for _ in range(3):
        states.append(_masks(api, iid))
        api.post(f"/api/images/{iid}/undo", json={})
    assert _masks(api, iid).keys() == {a["id"]} and \
        (_masks(api, iid)[a["id"]] == truth["a.png"]).all()
    assert [set(s) for s in states] == [{a["id"]}, {a["id"], second["annotation"]["id"]},
                                        {a["id"]}]
    api.post(f"/api/images/{iid}/redo", json={})
    got = _masks(api, iid)
    np.testing.assert_array_equal(got[a["id"]], rle.decode([small])[0])
    cls = api.get(f"/api/images/{iid}/annotations")["annotations"][0]["class_id"]
    assert cls == 2
    # a new edit clears the redo stack
    api.post(f"/api/images/{iid}/annotations", json={"class_id": 1, "mask": small})
    api.post(f"/api/images/{iid}/redo", json={}, expect=400)
    kinds = [h["kind"] for h in api.get(f"/api/images/{iid}/history")]
    # the undone create + delete left the redo stack when the new edit came
    assert kinds == ["create", "update", "discarded", "discarded", "undo", "undo", "undo",
                     "redo", "create"]


def test_polygons_are_a_derived_view(app_env):
    api, _, _ = app_env
    _, imgs = _project(api)
    iid = imgs["b.png"]["id"]
    ring = np.zeros(SIZE, bool)
    ring[10:100, 10:100] = True
    ring[40:60, 40:60] = False  # a hole: RLE keeps it
    a = api.post(f"/api/images/{iid}/annotations",
                 json={"class_id": 1, "mask": rle.encode(ring)[0]})["annotation"]
    np.testing.assert_array_equal(rle.decode([a["mask"]])[0], ring)
    polys = api.get(f"/api/annotations/{a['id']}/polygons?detail=0")["polygons"]
    assert sorted(p["hole"] for p in polys) == [False, True]
    import cv2

    canvas = np.zeros(SIZE, np.uint8)
    for p in polys:  # outline through pixel centres: fill outer, cut holes' interiors
        pts = np.round(np.array(p["points"]) - 0.5).astype(np.int32)
        if p["hole"]:
            cv2.fillPoly(canvas, [pts], 0)
            cv2.polylines(canvas, [pts], True, 1)
        else:
            cv2.fillPoly(canvas, [pts], 1)
    np.testing.assert_array_equal(canvas.astype(bool), ring)


def test_export_every_format_and_coco_round_trip(app_env, tmp_path):
    from masklab.io import convert

    api, truth, base = app_env
    p, imgs = _project(api)
    for name, (x0, y0, x1, y1) in RECTS.items():
        api.post(f"/api/images/{imgs[name]['id']}/annotations",
                 json={"class_id": 1, "mask": rect_rle(x0, y0, x1, y1)})
    out = {}
    for fmt in ("coco", "coco-polygons", "yolo", "labels", "instances", "davis"):
        r = api.post(f"/api/projects/{p['id']}/export", json={"format": fmt})
        data = api.get(r["url"])
        out[fmt] = data
    coco = out["coco"]
    assert [i["file_name"] for i in coco["images"]] == sorted(RECTS)
    assert coco["categories"] == [{"id": 1, "name": "box"}, {"id": 2, "name": "other"}]
    for ann, name in zip(coco["annotations"], sorted(RECTS), strict=True):
        np.testing.assert_array_equal(rle.decode([ann["segmentation"]])[0], truth[name])
    polys = out["coco-polygons"]["annotations"]
    from masklab.types import Masks

    for ann, name in zip(polys, sorted(RECTS), strict=True):
        m = Masks.from_polygons([ann["segmentation"]], *SIZE).to_dense()[0]
        np.testing.assert_array_equal(m, truth[name])
    # the folder formats come as zips; read them back with masklab's readers
    import zipfile

    for fmt in ("labels", "instances", "yolo"):
        d = tmp_path / fmt
        zipfile.ZipFile(io.BytesIO(out[fmt].content)).extractall(d)
        kw = {"images_dir": base / "data" / "imgs"}
        ms = convert.READERS[fmt](d, **kw)
        for item in ms.items:
            got = item.masks.to_dense()
            assert len(got) == 1
            if fmt == "yolo":  # normalised polygon corners: the rectangle within a pixel
                inter = (got[0] & truth[item.file_name]).sum()
                union = (got[0] | truth[item.file_name]).sum()
                assert inter / union > 0.95
            else:
                np.testing.assert_array_equal(got[0], truth[item.file_name])
    # `masklab eval coco` scores the export: the true rectangles as results give AP 1
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    res = [{"image_id": i["id"], "category_id": 1, "score": 1.0,
            "segmentation": rect_rle(*RECTS[i["file_name"]])} for i in coco["images"]]
    (tmp_path / "res.json").write_text(json.dumps(res))
    from click.testing import CliRunner

    from masklab.cli import main

    r = CliRunner().invoke(main, ["eval", "coco", str(tmp_path / "gt.json"),
                                  str(tmp_path / "res.json"), "--json",
                                  str(tmp_path / "ap.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ap.json").read_text())["stats"][0] == pytest.approx(1.0)
    # import the export into a new project: exactly the same annotations come back
    export_file = sorted((base / "data" / "exports").glob("*-coco-*.json"))[0]
    q = api.post("/api/projects", json={"name": "q", "classes": []})
    r = api.post(f"/api/projects/{q['id']}/import-coco",
                 json={"coco": str(export_file), "images_dir": str(base / "data" / "imgs")})
    assert r == {"images": 3, "annotations": 3}
    again = api.get(api.post(f"/api/projects/{q['id']}/export", json={"format": "coco"})["url"])
    strip = [{k: a[k] for k in ("segmentation", "area", "bbox", "category_id", "image_id")}
             for a in coco["annotations"]]
    strip2 = [{k: a[k] for k in ("segmentation", "area", "bbox", "category_id", "image_id")}
              for a in again["annotations"]]
    ids = {i["id"]: i["file_name"] for i in coco["images"]}
    ids2 = {i["id"]: i["file_name"] for i in again["images"]}
    for s in strip:
        s["image_id"] = ids[s["image_id"]]
    for s in strip2:
        s["image_id"] = ids2[s["image_id"]]
    assert strip2 == strip
    assert again["categories"] == coco["categories"]


def test_review_flow_and_status(app_env):
    api, _, _ = app_env
    _, imgs = _project(api)
    iid = imgs["c.png"]["id"]
    api.put(f"/api/images/{iid}/status", json={"status": "done"})
    api.put(f"/api/images/{iid}/status", json={"status": "rejected"}, expect=400)  # no comment
    r = api.put(f"/api/images/{iid}/status", json={"status": "rejected",
                                                    "comment": "tail missing"})
    assert (r["status"], r["comment"]) == ("rejected", "tail missing")
    api.put(f"/api/images/{iid}/status", json={"status": "approved"})
    api.put(f"/api/images/{iid}/status", json={"status": "finished"}, expect=400)
    counts = api.get("/api/projects/1")["status"]
    assert counts == {"new": 2, "approved": 1}


def test_bad_input_is_a_clear_4xx(app_env, tmp_path):
    api, _, base = app_env
    p, imgs = _project(api)
    c = api.c
    h = api.h
    # CSRF: a state-changing request without the header is refused
    assert c.post("/api/projects", json={"name": "x"}).status_code == 403
    r = c.post("/api/projects", content=b'{"name": ', headers={**h, "content-type":
                                                                "application/json"})
    assert r.status_code == 422 and "malformed JSON" in r.json()["detail"]
    assert c.post("/api/projects", json={"classes": []}, headers=h).status_code == 422
    assert c.get("/api/images/999").status_code == 404
    # confinement: outside the roots, traversal, and a symlink pointing out
    for folder in ("/etc", "../..", "imgs/../../.."):
        r = c.post(f"/api/projects/{p['id']}/import", json={"folder": folder}, headers=h)
        assert r.status_code == 403, (folder, r.text)
    # the app's own folders are not imported: importing the whole data folder adds the
    # three images, not the uploads, exports or frames
    r = c.post(f"/api/projects/{p['id']}/export", json={"format": "labels"}, headers=h)
    q = c.post("/api/projects", json={"name": "all", "classes": ["x"]}, headers=h).json()
    r = c.post(f"/api/projects/{q['id']}/import", json={"folder": "."}, headers=h)
    assert r.status_code == 200 and r.json()["added"] == 3, r.text
    (base / "data" / "escape").symlink_to("/etc")
    assert c.post(f"/api/projects/{p['id']}/import", json={"folder": "escape"},
                  headers=h).status_code == 403
    # masks that do not fit the image
    iid = imgs["a.png"]["id"]
    for mask in ({"size": [10, 10], "counts": "0"}, {"size": list(SIZE), "counts": [5, 5]},
                 {"size": list(SIZE), "counts": [SIZE[0] * SIZE[1]]},
                 {"size": list(SIZE), "counts": "\x7f\x7f"}):
        r = c.post(f"/api/images/{iid}/annotations", json={"class_id": 1, "mask": mask},
                   headers=h)
        assert r.status_code == 400, (mask, r.text)
    r = c.post(f"/api/images/{iid}/annotations", json={"class_id": 9, "mask": rect_rle(
        0, 0, 4, 4)}, headers=h)
    assert r.status_code == 400 and "class id 9" in r.json()["detail"]
    # uploads: not an image, a decompression bomb, too large, a name with markup
    files = {"files": ("x.png", b"not a png", "image/png")}
    r = c.post(f"/api/projects/{p['id']}/upload", files=files, headers=h)
    assert r.status_code == 400 and "x.png" in r.json()["detail"]
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")  # 400 MP, a few KB
    r = c.post(f"/api/projects/{p['id']}/upload",
               files={"files": ("bomb.png", buf.getvalue(), "image/png")}, headers=h)
    assert r.status_code == 400 and "over the limit" in r.json()["detail"]
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (1, 2, 3)).save(buf, "PNG")
    evil = "<img src=x onerror=alert(1)>.png"
    r = c.post(f"/api/projects/{p['id']}/upload",
               files={"files": (evil, buf.getvalue(), "image/png")}, headers=h)
    assert r.status_code == 200 and r.json()["images"][0]["file_name"] == evil
    assert r.json()["images"][0]["width"] == 8
    assert not list((base / "data" / "uploads").rglob("*.tmp*"))  # nothing half-written


def test_accounts_roles_and_csrf(tmp_path):
    from masklab.app import auth

    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", auth=True)
    store = app.state.store
    auth.add_user(store, "ada", "correct horse", "admin")
    auth.add_user(store, "ann", "annotator pw", "annotator")
    auth.add_user(store, "rev", "reviewer pw", "reviewer")
    with pytest.raises(ValueError, match="8 characters"):
        auth.add_user(store, "x", "short", "admin")
    assert store.Session().get(__import__("masklab.app.db", fromlist=["User"]).User, 1) \
        .password_hash.startswith("$argon2")

    def login(name, pw):
        c = TestClient(app)
        assert c.get("/api/projects").status_code == 401
        r = c.post("/api/login", json={"name": name, "password": pw})
        assert r.status_code == 200, r.text
        cookie = r.headers.get_list("set-cookie")
        sess = next(x for x in cookie if x.startswith("masklab_session="))
        assert "HttpOnly" in sess and "SameSite=strict" in sess
        return c, r.json()["csrf"]

    c = TestClient(app)
    assert c.post("/api/login", json={"name": "ada", "password": "wrong"}).status_code == 401
    assert c.post("/api/login", json={"name": "nobody", "password": "x"}).status_code == 401
    admin_c, admin_csrf = login("ada", "correct horse")
    # a logged-in request without the CSRF token is refused
    assert admin_c.post("/api/projects", json={"name": "p"}).status_code == 403
    admin = Api(admin_c, admin_csrf)
    p = admin.post("/api/projects", json={"name": "p", "classes": ["box"]})
    admin.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    ann_c, ann_csrf = login("ann", "annotator pw")
    ann = Api(ann_c, ann_csrf)
    ann.post("/api/projects", json={"name": "q"}, expect=403)
    ann.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"}, expect=403)
    ann.post("/api/images/1/annotations", json={"class_id": 1, "mask": rect_rle(0, 0, 9, 9)})
    ann.put("/api/images/1/status", json={"status": "done"})
    ann.put("/api/images/1/status", json={"status": "approved"}, expect=403)
    rev = Api(*login("rev", "reviewer pw"))
    rev.put("/api/images/1/status", json={"status": "approved"})
    ann.get("/api/users", expect=403)
    assert [u["name"] for u in admin.get("/api/users")] == ["ada", "ann", "rev"]
    ann.post("/api/logout")
    assert ann_c.get("/api/projects").status_code == 401


def test_attributes_schema_and_values(app_env):
    api, _, _ = app_env
    schema = [{"name": "occluded", "type": "bool"},
              {"name": "colour", "type": "choice", "values": ["red", "blue"]},
              {"name": "count", "type": "number"}, {"name": "note"}]
    p = api.post("/api/projects", json={"name": "a", "classes": ["box"],
                                        "attributes": schema})
    assert [a["type"] for a in p["attributes"]] == ["bool", "choice", "number", "text"]
    api.post("/api/projects", json={"name": "b", "attributes": [{"name": "x", "type": "date"}]},
             expect=400)
    api.post("/api/projects", json={"name": "c", "attributes": [{"name": "x",
                                                                 "type": "choice"}]},
             expect=400)
    api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
    a = api.post("/api/images/1/annotations", json={
        "class_id": 1, "mask": rect_rle(1, 1, 9, 9),
        "attributes": {"occluded": True, "colour": "red"}})["annotation"]
    assert a["attributes"] == {"occluded": True, "colour": "red"}
    r = api.patch(f"/api/annotations/{a['id']}", json={"attributes": {"count": 3,
                                                                       "colour": None}})
    assert r["annotation"]["attributes"] == {"occluded": True, "colour": None, "count": 3}
    for bad in ({"occluded": "yes"}, {"colour": "green"}, {"count": "3"}, {"size": 1},
                {"count": True}):
        api.patch(f"/api/annotations/{a['id']}", json={"attributes": bad}, expect=400)
    api.put(f"/api/projects/{p['id']}/attributes", json={"attributes": [{"name": "note"}]})
    assert api.get(f"/api/projects/{p['id']}")["attributes"] == [{"name": "note",
                                                                   "type": "text"}]


def test_login_backoff_per_account_and_address(tmp_path, caplog):
    """Wrong passwords: free tries, then 429 with a Retry-After that doubles; no password is
    checked while locked; a success resets; another account from another address is not
    slowed; every failure is logged."""
    from masklab.app import auth

    app = create_app(tmp_path / "data", backend="grabcut", auth=True)
    auth.add_user(app.state.store, "ada", "correct horse", "admin")
    auth.add_user(app.state.store, "bob", "bob's password", "annotator")
    now = [1000.0]
    throttle = app.state.login_throttle
    throttle.clock = lambda: now[0]
    attacker = TestClient(app, client=("203.0.113.7", 5000))

    def try_login(c, name, pw):
        return c.post("/api/login", json={"name": name, "password": pw})

    with caplog.at_level("WARNING", logger="masklab.app.auth"):
        codes = [try_login(attacker, "ada", f"guess {i}").status_code for i in range(5)]
    assert codes == [401] * 5
    assert sum("login failed for 'ada' from 203.0.113.7" in r.message
               for r in caplog.records) == 5
    waits = []
    for _ in range(4):  # each failure past the free ones doubles the lock: 1, 2, 4, 8 s
        r = try_login(attacker, "ada", "still wrong")
        assert r.status_code == 429 and "try again" in r.json()["detail"]
        waits.append(int(r.headers["Retry-After"]))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8]
    try_login(attacker, "ada", "wrong again")  # locked for 16 s now
    now[0] += 5
    r = try_login(attacker, "ada", "correct horse")  # even the right password waits
    assert r.status_code == 429 and r.headers["Retry-After"] == "11"
    # the same account from another address is locked too (the account is the target) …
    assert try_login(TestClient(app, client=("198.51.100.2", 1)), "ada",
                     "correct horse").status_code == 429
    # … but another account from another address logs in at once
    assert try_login(TestClient(app, client=("198.51.100.2", 1)), "bob",
                     "bob's password").status_code == 200
    now[0] += 11
    assert try_login(attacker, "ada", "correct horse").status_code == 200  # resets
    assert [try_login(attacker, "ada", "x").status_code for _ in range(5)] == [401] * 5
    assert try_login(attacker, "ada", "x").status_code == 429

    # per address: one address guessing many accounts is slowed after its own free tries
    app2 = create_app(tmp_path / "data2", backend="grabcut", auth=True)
    app2.state.login_throttle.clock = lambda: now[0]
    auth.add_user(app2.state.store, "bob", "bob's password", "annotator")
    sprayer = TestClient(app2, client=("192.0.2.9", 1))
    got = [try_login(sprayer, f"user{i}", "password1").status_code for i in range(21)]
    assert got == [401] * 20 + [429]
    assert try_login(TestClient(app2, client=("192.0.2.10", 1)), "bob",
                     "bob's password").status_code == 200


def test_login_throttle_memory_is_bounded():
    from masklab.app.auth import LoginThrottle

    now = [0.0]
    t = LoginThrottle(max_keys=50, forget=60, clock=lambda: now[0])
    for i in range(500):
        t.failed(f"name{i}", "10.0.0.1")
    assert len(t._state) <= 51 and ("address", "10.0.0.1") in t._state
    now[0] += 61  # idle keys are forgotten; the address is still locked (900 s), so kept
    t.failed("late", None)
    assert set(t._state) == {("address", "10.0.0.1"), ("account", "late")}
    now[0] += 900
    t.failed("later", None)
    assert set(t._state) == {("account", "later")}


def test_image_list_paged_filtered_sorted(app_env):
    """Pages, filters and next/previous of the image list against the same filters and
    order computed in Python on the whole list (SQLite here, PostgreSQL in test_postgres)."""
    import datetime as dt
    import itertools

    import sqlalchemy

    from masklab.app import db

    api, _, _ = app_env
    store = api.c.app.state.store
    p, _ = _project(api)
    pid = p["id"]
    rng = np.random.default_rng(1)
    tags = ["cat", "Dog", "CAT", "bird_%"]  # any case; "%" and "_" are no wildcards
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with store.transaction() as s:
        users = [db.User(name=f"u{k}", password_hash="-", role="annotator") for k in range(2)]
        s.add_all(users)
        s.flush()
        uids = [u.id for u in users]
        for k in range(137):
            video = f"x{k:04d}_clip" if k % 23 == 0 else None
            for f in range(3 if video else 1):
                s.add(db.Image(project_id=pid, path="/nonexistent.png", width=SIZE[1],
                               height=SIZE[0], sha256="0" * 64,
                               file_name=f"{video}/{f:05d}.jpg" if video
                               else f"x{k:04d}_{tags[k % 4]}.png",
                               status=str(rng.choice(db.STATUSES)), comment="",
                               assignee_id=[None, *uids][k % 3], version=0,
                               updated_at=t0 + dt.timedelta(minutes=int(rng.integers(50))),
                               video=video, frame=f if video else None))
    everything = store.all_images(pid)
    assert len(everything) == 3 + 137 + 2 * 6
    # annotations and proposals on some images (the counts follow every edit)
    some = [i for i in everything if i["file_name"].startswith("x")][:40]
    for k, im in enumerate(some[:30]):
        api.post(f"/api/images/{im['id']}/annotations", json={
            "class_id": 1, "mask": rect_rle(0, 0, 5 + k, 5), "proposal": k % 3 == 0})
    gone = api.get(f"/api/images/{some[1]['id']}/annotations")["annotations"][0]
    api.delete(f"/api/annotations/{gone['id']}")
    api.post(f"/api/images/{some[2]['id']}/undo", json={})
    everything = store.all_images(pid)
    by_id = {i["id"]: i for i in everything}
    assert by_id[some[0]["id"]]["proposals"] == 1 and by_id[some[0]["id"]]["annotations"] == 0
    assert by_id[some[1]["id"]]["annotations"] == 0 and by_id[some[2]["id"]]["annotations"] == 0
    assert by_id[some[4]["id"]]["annotations"] == 1
    proj = api.get(f"/api/projects/{pid}")
    assert proj["annotated"] == sum(i["annotations"] > 0 for i in everything)
    assert proj["with_proposals"] == sum(i["proposals"] > 0 for i in everything)

    def oracle(status=None, assignee=None, annotated=None, proposals=None, q=None,
               sort="name", frames="first"):
        rows = [i for i in everything if frames == "all" or not i["frame"]]
        if status:
            rows = [i for i in rows if i["status"] == status]
        if assignee is not None:
            want = None if assignee == "none" else int(assignee)
            rows = [i for i in rows if i["assignee_id"] == want]
        if annotated is not None:
            rows = [i for i in rows if (i["annotations"] > 0) == annotated]
        if proposals is not None:
            rows = [i for i in rows if (i["proposals"] > 0) == proposals]
        if q:
            rows = [i for i in rows if q.lower() in i["file_name"].lower()]
        key = sort.lstrip("-")
        if key == "updated":
            with store.Session() as s:
                upd = dict(s.execute(sqlalchemy.select(db.Image.id, db.Image.updated_at)).all())
            rows.sort(key=lambda i: (upd[i["id"]], i["id"]), reverse=sort.startswith("-"))
        else:
            rows.sort(key=lambda i: (i["file_name"], i["id"]) if key == "name" else i["id"],
                      reverse=sort.startswith("-"))
        return [i["id"] for i in rows]

    cases = [{}, {"status": "done"}, {"assignee": "none"}, {"assignee": str(uids[1])},
             {"annotated": True}, {"annotated": False, "status": "new"}, {"proposals": True},
             {"q": "cat"}, {"q": "_%"}, {"q": "CLIP", "frames": "all"}, {"sort": "-name"},
             {"sort": "updated", "status": "in_progress"}, {"sort": "-updated"},
             {"sort": "-id", "assignee": str(uids[0]), "q": "dog"}]
    for case in cases:
        want = oracle(**case)
        got, offset = [], 0
        while True:
            page = api.get(f"/api/projects/{pid}/images", params={
                **{k: str(v).lower() if isinstance(v, bool) else v for k, v in case.items()},
                "offset": offset, "limit": 17})
            assert page["total"] == len(want), case
            got += [i["id"] for i in page["items"]]
            for i in page["items"]:
                if i["video"]:
                    assert page["frames"][i["video"]] == 3
            offset += 17
            if offset >= page["total"]:
                break
        assert got == want, case
        # next / previous under the same filter walk the same list
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in case.items()}
        for a, b in itertools.pairwise(want[:12]):
            assert api.get(f"/api/images/{a}/neighbour", params={**params, "step": 1}
                           )["image"]["id"] == b
            assert api.get(f"/api/images/{b}/neighbour", params={**params, "step": -1}
                           )["image"]["id"] == a
        if want:
            assert api.get(f"/api/images/{want[-1]}/neighbour",
                           params={**params, "step": 1})["image"] is None
        if len(want) > 5:
            assert api.get(f"/api/images/{want[0]}/neighbour",
                           params={**params, "step": 5})["image"]["id"] == want[5]
    # an image outside the filter still has neighbours in it (its place in the order)
    done = oracle(status="done")
    outside = next(i for i in oracle() if by_id[i]["status"] != "done")
    nxt = api.get(f"/api/images/{outside}/neighbour", params={"status": "done"})["image"]
    names = {i["id"]: (i["file_name"], i["id"]) for i in everything}
    assert (nxt or {}).get("id") == min((i for i in done if names[i] > names[outside]),
                            key=names.get, default=None)
    api.get(f"/api/projects/{pid}/images", params={"status": "bogus"}, expect=400)
    api.get(f"/api/projects/{pid}/images", params={"sort": "size"}, expect=400)
    api.get(f"/api/projects/{pid}/images", params={"assignee": "x"}, expect=400)
    api.get(f"/api/projects/{pid}/images", params={"limit": 501}, expect=422)
    api.get(f"/api/projects/{pid}/images", params={"assignee": "me"}, expect=400)


def test_project_without_counts(app_env):
    """The editor asks for the project without its counts (no scan of its images)."""
    api, _, _ = app_env
    p, _ = _project(api)
    full = api.get(f"/api/projects/{p['id']}")
    light = api.get(f"/api/projects/{p['id']}", params={"counts": "false"})
    assert full["images"] == 3 and full["status"] == {"new": 3}
    assert light == {k: full[k] for k in ("id", "name", "classes", "attributes", "settings")}
