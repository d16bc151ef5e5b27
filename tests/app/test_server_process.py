"""The app as a real server process on loopback: `kill -9` in the middle of a burst of edits
loses no acknowledged edit and leaves a database that passes its integrity check; two clients
editing one image get a 409, not a lost update."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from masklab.app.process import stop_server
from tests.app.helpers import make_images, rect_rle

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def _free_port() -> int:
    from masklab.app.process import free_port

    return free_port()


def start_server(data, port, *extra) -> subprocess.Popen:
    from masklab.app.process import start_server as start

    return start(data, "--backend", "grabcut", *extra, port=port, timeout=60)[0]


def _client(port):
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    csrf = c.get("/api/session").json()["csrf"]
    c.headers["X-CSRF-Token"] = csrf
    return c


def test_kill_9_loses_no_acknowledged_edit(tmp_path):
    data = tmp_path / "data"
    make_images(data / "imgs")
    port = _free_port()
    proc = start_server(data, port)
    acked: dict[int, list] = {}
    try:
        c = _client(port)
        p = c.post("/api/projects", json={"name": "p", "classes": ["box"]}).json()
        c.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"}).raise_for_status()
        stop = threading.Event()

        def burst():
            k = 0
            while not stop.is_set() and k < 2000:
                x = k % 150
                try:
                    r = c.post("/api/images/1/annotations", json={
                        "class_id": 1, "mask": rect_rle(x, 0, x + 5, 5 + k % 100)})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    a = r.json()["annotation"]
                    acked[a["id"]] = a["mask"]
                k += 1

        t = threading.Thread(target=burst)
        t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of the burst
        proc.wait(10)
        stop.set()
        t.join(30)
        assert len(acked) >= 40
    finally:
        if proc.poll() is None:
            proc.kill()
    db = data / "masklab.db"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    proc = start_server(data, port)
    try:
        c = _client(port)
        anns = {a["id"]: a["mask"] for a in
                c.get("/api/images/1/annotations").json()["annotations"]}
        missing = [i for i in acked if i not in anns]
        assert not missing, f"{len(missing)} acknowledged edits lost"
        assert all(anns[i] == m for i, m in acked.items())
        # every stored annotation has its op in the history (one transaction each)
        hist = c.get("/api/images/1/history").json()
        assert {h["annotation_id"] for h in hist if h["kind"] == "create"} == set(anns)
    finally:
        stop_server(proc)


def test_two_annotators_one_image_no_lost_update(tmp_path):
    data = tmp_path / "data"
    make_images(data / "imgs")
    port = _free_port()
    proc = start_server(data, port)
    try:
        a, b = _client(port), _client(port)
        p = a.post("/api/projects", json={"name": "p", "classes": ["box"]}).json()
        a.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"}).raise_for_status()
        va = a.get("/api/images/1/annotations").json()["image"]["version"]
        vb = b.get("/api/images/1/annotations").json()["image"]["version"]
        ra = a.post("/api/images/1/annotations", json={
            "class_id": 1, "mask": rect_rle(0, 0, 10, 10), "version": va})
        assert ra.status_code == 200
        rb = b.post("/api/images/1/annotations", json={
            "class_id": 1, "mask": rect_rle(20, 20, 30, 30), "version": vb})
        assert rb.status_code == 409 and rb.json()["version"] == va + 1
        # b reloads and retries: both edits are there
        vb = b.get("/api/images/1/annotations").json()["image"]["version"]
        assert b.post("/api/images/1/annotations", json={
            "class_id": 1, "mask": rect_rle(20, 20, 30, 30), "version": vb}).status_code == 200
        assert len(a.get("/api/images/1/annotations").json()["annotations"]) == 2
    finally:
        stop_server(proc)


def test_non_loopback_host_needs_an_admin(tmp_path):
    r = subprocess.run([sys.executable, "-m", "masklab.cli", "app", "--data",
                        str(tmp_path / "d"), "--host", "0.0.0.0", "--port", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "needs accounts" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_python_client_over_http(tmp_path):
    from masklab.app.client import Client, StaleVersionError
    from masklab.io.coco import load_coco

    data = tmp_path / "data"
    truth = make_images(data / "imgs")
    port = _free_port()
    proc = start_server(data, port)
    try:
        with Client(f"http://127.0.0.1:{port}") as c:
            p = c.create_project("p", ["box"])
            assert c.import_folder(p["id"], "imgs")["added"] == 3
            img = next(i for i in c.images(p["id"]) if i["file_name"] == "a.png")
            m = c.segment(img["id"], points=[[80, 60]], labels=[1])
            assert (m.to_dense()[0] == truth["a.png"]).all()
            r = c.add_annotation(img["id"], m, class_id=1, source="grabcut", version=0)
            with pytest.raises(StaleVersionError, match="409"):
                c.add_annotation(img["id"], m, class_id=1, version=0)
            got = c.annotations(img["id"])
            assert list(got.track_ids) == [r["annotation"]["id"]]
            assert (got.to_dense()[0] == truth["a.png"]).all()
            out = c.export(p["id"], "coco", tmp_path / "out.json")
            ds = load_coco(out)
            assert len(ds.annotations) == 1
    finally:
        stop_server(proc)


def test_login_backoff_over_http(tmp_path):
    """A running server with accounts: 30 wrong passwords in a row from one address are
    slowed (429 + Retry-After after 5 tries), while another account logs in at once from
    another loopback address (127.0.0.2)."""
    import os

    data = tmp_path / "data"
    env = {**os.environ, "MASKLAB_APP_PASSWORD": "correct horse"}
    for name, role in (("ada", "admin"), ("bob", "annotator")):
        subprocess.run([sys.executable, "-m", "masklab.cli", "app", "--data", str(data),
                        "--add-user", name, "--role", role], env=env, check=True,
                       capture_output=True, timeout=120)
    port = _free_port()
    proc = start_server(data, port, "--auth")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            codes = [c.post("/api/login", json={"name": "ada", "password": f"guess{i}"})
                     for i in range(30)]
        assert [r.status_code for r in codes[:5]] == [401] * 5
        assert all(r.status_code == 429 for r in codes[5:])
        assert int(codes[5].headers["Retry-After"]) >= 1
        other = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=url, timeout=10, transport=other) as c:
            r = c.post("/api/login", json={"name": "bob", "password": "correct horse"})
            assert r.status_code == 200, r.text
    finally:
        stop_server(proc)


def test_a_job_survives_kill_9_and_labels_no_image_twice(tmp_path):
    """A pre-labelling job is killed with the server (kill -9) halfway; the restarted server
    resumes it where its committed progress stopped: every image done once."""
    data = tmp_path / "data"
    make_images(data / "many", {f"i{k:02d}.png": (20 + k, 10, 90 + k, 80) for k in range(40)})
    port = _free_port()
    proc = start_server(data, port)
    try:
        c = _client(port)
        p = c.post("/api/projects", json={"name": "p", "classes": ["box"]}).json()
        c.post(f"/api/projects/{p['id']}/import", json={"folder": "many"}).raise_for_status()
        job = c.post(f"/api/projects/{p['id']}/jobs", json={
            "kind": "prelabel", "params": {"source": "everything", "class_id": 1,
                                           "limit": 3}}).json()
        assert job["total"] == 40
        deadline = time.monotonic() + 60
        while c.get(f"/api/jobs/{job['id']}").json()["done"] < 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_server(data, port)
    try:
        c = _client(port)
        deadline = time.monotonic() + 120
        while (j := c.get(f"/api/jobs/{job['id']}").json())["state"] != "done":
            assert j["state"] in ("queued", "running") and time.monotonic() < deadline, j
            time.sleep(0.05)
        assert j["runs"] == 2 and j["done"] == j["total"] == 40 and j["failed"] == 0, j
        # the resumed run found nothing already there: no image was labelled twice
        assert j["result"]["duplicates_dropped"] == 0
        imgs = c.get(f"/api/projects/{p['id']}/images", params={"limit": 500}).json()["items"]
        assert all(i["proposals"] >= 1 for i in imgs)
        hist = [h for i in imgs for h in c.get(f"/api/images/{i['id']}/history").json()]
        assert len(hist) == sum(i["proposals"] for i in imgs)  # one create per proposal
    finally:
        stop_server(proc)
