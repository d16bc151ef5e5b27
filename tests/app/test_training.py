"""The app trains a model on a project's annotations (a job, in a child process): the
held-out images never trained on, the live events, the model version (weights, classes,
metrics, image ids) usable from the CLI, ONNX and pre-labelling, which stores each image's
uncertainty for the "least confident first" queue; clear refusals for too few images."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from PIL import Image

from masklab import rle
from masklab.app import create_app
from masklab.app.training import held_out, split
from tests.app.helpers import Api
from tests.app.test_jobs import wait_job

TINY = {"depth": 2, "width": 8}


def _scenes(folder, n, seed=0, size=(48, 64)):
    """Images with a bright disc (class "disc") on dark noise; returns name -> mask."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size[0], :size[1]]
    truth = {}
    for k in range(n):
        cx, cy, r = rng.uniform(16, size[1] - 16), rng.uniform(14, size[0] - 14), \
            rng.uniform(7, 12)
        m = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        img = rng.normal(40, 10, (*size, 3))
        img[m] = rng.normal(210, 10, (m.sum(), 3))
        name = f"s{k:03d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / name)
        truth[name] = m
    return truth


@pytest.fixture
def app_env(tmp_path):
    app = create_app(tmp_path / "data", backend="grabcut", job_stale=2.0)
    with TestClient(app) as c:
        yield Api(c), tmp_path


def _labelled_project(api, tmp, n=12, labelled=10, name="train"):
    truth = _scenes(tmp / "data" / name, n)
    p = api.post("/api/projects", json={"name": name, "classes": ["disc", "never"]})
    api.post(f"/api/projects/{p['id']}/import", json={"folder": name})
    images = api.get(f"/api/projects/{p['id']}/images", params={"limit": 100})["items"]
    disc = p["classes"][0]["id"]
    for im in images[:labelled]:
        api.post(f"/api/images/{im['id']}/annotations", json={
            "class_id": disc, "mask": rle.encode(truth[im["file_name"]])[0]})
        api.put(f"/api/images/{im['id']}/status", json={"status": "done"})
    return p, images, truth


def test_held_out_part_is_fixed_by_seed_and_id():
    ids = list(range(1, 2001))
    train, val = split(ids, 0, 20)
    assert 0.17 < len(val) / len(ids) < 0.23 and not set(train) & set(val)
    # more labelled images never move an image between the parts
    train2, val2 = split(ids + list(range(2001, 3001)), 0, 20)
    assert set(val) <= set(val2) and set(train) <= set(train2)
    assert [held_out(i, 1, 20) for i in ids] != [held_out(i, 0, 20) for i in ids]


def test_train_job_makes_a_model_version_used_everywhere(app_env, tmp_path):
    api, tmp = app_env
    p, images, _ = _labelled_project(api, tmp)
    job = api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "train", "params": {
        "model": "unet", "model_config": TINY, "epochs": 6, "crop": 32, "batch_size": 4,
        "lr": 0.01, "val_percent": 25, "threads": 1}})
    j = wait_job(api, job["id"], timeout=300)
    assert j["state"] == "done", j
    r = j["result"]
    assert r["version"] == 1 and 0.0 <= r["score"] <= 1.0 and r["score_name"] == "mIoU"
    assert any("'never' has no pixels" in w for w in r["warnings"])
    ev = api.get(f"/api/jobs/{job['id']}/events")["events"]
    steps = [e for e in ev if e["event"] == "step"]
    epochs = [e for e in ev if e["event"] == "epoch"]
    assert [e["threads"] for e in ev if e["event"] == "start"] == [1]  # the job's threads
    assert len(epochs) == 6 and steps[-1]["step"] == steps[-1]["total_steps"]
    assert all(e["val_mIoU"] is not None and e["val"] == e["val_mIoU"] for e in epochs)
    assert steps[-1]["loss"] < steps[0]["loss"]  # it learns
    models = api.get(f"/api/projects/{p['id']}/models")
    assert [m["version"] for m in models] == [1]
    m = api.get(f"/api/models/{models[0]['id']}", params={"ids": "true"})
    assert m["classes"] == ["background", "disc", "never"] and m["task"] == "semantic"
    train_ids, val_ids = m["image_ids"]["train"], m["image_ids"]["val"]
    done = {im["id"] for im in images[:10]}
    assert set(train_ids) | set(val_ids) == done and not set(train_ids) & set(val_ids)
    assert val_ids == [i for i in sorted(done) if held_out(i, 0, 25)]
    # the held-out images were never in the training folder
    folder = tmp / "data" / "training" / f"job-{job['id']}" / "dataset"
    assert sorted(int(f.stem) for f in (folder / "train" / "images").iterdir()) == \
        sorted(train_ids)
    # the checkpoint works from the CLI
    from click.testing import CliRunner

    from masklab.cli import main as cli

    zpath = tmp_path / "m.zip"
    zpath.write_bytes(api.c.get(f"/api/models/{m['id']}/download").content)
    with zipfile.ZipFile(zpath) as z:
        z.extractall(tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["class_names"] == ["background", "disc", "never"]
    res = CliRunner().invoke(cli, ["segment", "semantic", str(tmp / "data" / "train" /
                                                              images[11]["file_name"]),
                                   "--model", str(tmp_path / "ckpt"), "--out",
                                   str(tmp_path / "seg")])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "seg").glob("*.png"))
    # ONNX: the same classes as PyTorch
    onnx = api.c.get(f"/api/models/{m['id']}/onnx")
    assert onnx.status_code == 200 and len(onnx.content) > 1000
    import onnxruntime as ort
    import torch

    from masklab.models.semantic import load_semantic_model

    (tmp_path / "m.onnx").write_bytes(onnx.content)
    img = np.array(Image.open(tmp / "data" / "train" / images[11]["file_name"]))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    sm = load_semantic_model(str(tmp_path / "ckpt"))
    with torch.no_grad():
        ref = sm(sm.normalize(x)).argmax(1).numpy()
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"image": x.numpy()})[0]
    assert (got.argmax(1) == ref).mean() > 0.999
    # pre-label the rest with the version: proposals named after it, uncertainty stored
    rest = [im["id"] for im in images[10:]]
    pj = api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "model", "model_id": m["id"]},
        "filter": {"status": "new"}})
    j = wait_job(api, pj["id"], timeout=120)
    assert j["state"] == "done", j
    for i in rest:
        anns = api.get(f"/api/images/{i}/annotations")
        anns = anns["annotations"] if isinstance(anns, dict) else anns
        assert all(a["source"] == "model v1" and a["proposal"] for a in anns)
    listed = api.get(f"/api/projects/{p['id']}/images", params={
        "sort": "-uncertain"})["items"]
    from masklab.app import db as _db
    from masklab.app.store import Store

    store = Store(_db.make_engine(_db.sqlite_url(tmp / "data" / "masklab.db")), tmp / "data")
    with store.Session() as s:
        unc = {i: s.get(_db.Image, i).uncertainty for i in rest}
        prio = {i: s.get(_db.Image, i).priority for i in rest}
    assert all(u is not None and 0.0 <= u <= 1.0 for u in unc.values())
    # the queue: least confident first, made diverse (priorities distinct, on the
    # uncertainties' scale, the most uncertain image first); never scored (labelled) last
    assert len(set(prio.values())) == len(rest)
    assert all(prio[i] <= unc[i] + 1e-12 for i in rest)
    top = max(rest, key=lambda i: (unc[i], -i))
    assert [im["id"] for im in listed[:len(rest)]] == sorted(rest, key=lambda i: -prio[i])
    assert listed[0]["id"] == top
    # the project can make that its queue
    s = api.put(f"/api/projects/{p['id']}/settings", json={"order": "uncertain"})
    assert s["settings"]["order"] == "uncertain"
    # a new version going on from this one starts where it ended, not from scratch
    params = {"model": "unet", "model_config": TINY, "epochs": 1, "crop": 32, "batch_size": 4,
              "lr": 0.01, "val_percent": 25, "threads": 1, "from_version": m["id"]}
    j2 = wait_job(api, api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "train", "params": params})["id"], timeout=300)
    assert j2["state"] == "done" and j2["result"]["version"] == 2, j2
    ev2 = api.get(f"/api/jobs/{j2['id']}/events")["events"]
    first = next(e["loss"] for e in ev2 if e["event"] == "step")
    assert first < steps[0]["loss"] and first < 1.5 * steps[-1]["loss"]
    r = api.post(f"/api/projects/{p['id']}/jobs", expect=400, json={"kind": "train", "params": {
        **params, "model_config": {"depth": 3, "width": 8}}})
    assert "has model_config" in r["detail"]


def test_train_job_refuses_too_few_images_and_bad_settings(app_env):
    api, tmp = app_env
    p, _, _ = _labelled_project(api, tmp, n=3, labelled=2, name="few")
    for params, msg in (({"model_config": TINY}, "labelled image(s)"),
                        ({"model": "maskrcnn_resnet50_fpn_v2"}, "not a semantic one"),
                        ({"model": "nope"}, "no model 'nope'"),
                        ({"epochs": 0}, "epochs must be between"),
                        ({"unlabelled": "x"}, "unlabelled must be"),
                        ({"precision": "fp16"}, "precision must be one of auto, fp32")):
        r = api.post(f"/api/projects/{p['id']}/jobs", expect=400,
                     json={"kind": "train", "params": params})
        assert msg in r["detail"], (params, r)


def test_train_job_cancel_then_resume_from_checkpoint(app_env):
    api, tmp = app_env
    p, _, _ = _labelled_project(api, tmp, n=10, labelled=10, name="resume")
    params = {"model": "unet", "model_config": TINY, "epochs": 40, "crop": 32,
              "batch_size": 2, "val_percent": 25, "threads": 1}
    job = api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "train", "params": params})
    run = tmp / "data" / "training" / f"job-{job['id']}"
    import time

    t = time.monotonic()
    while not (run / "run" / "train_state.pt").is_file():  # an epoch's checkpoint
        assert time.monotonic() - t < 120
        time.sleep(0.2)
    api.post(f"/api/jobs/{job['id']}/cancel")
    j = wait_job(api, job["id"], timeout=60)
    assert j["state"] == "cancelled"
    epochs_before = [e["epoch"] for e in api.get(f"/api/jobs/{job['id']}/events")["events"]
                     if e["event"] == "epoch"]
    assert epochs_before and epochs_before[-1] < 40
    # the same run folder, resumed (as a requeued job is after a restart)
    from sqlalchemy import update

    from masklab.app import db as _db
    from masklab.app.store import Store  # noqa: F401

    store = api.c.app.state.store
    with store.transaction() as s:
        s.execute(update(_db.Job).where(_db.Job.id == job["id"]).values(
            state="queued", cancel=False, params={**j["params"], "epochs": epochs_before[-1] + 2}))
    api.c.app.state.jobs.wake()
    j = wait_job(api, job["id"], timeout=120)
    assert j["state"] == "done", j
    epochs = [e["epoch"] for e in api.get(f"/api/jobs/{job['id']}/events")["events"]
              if e["event"] == "epoch"]
    assert epochs[len(epochs_before):] == [epochs_before[-1] + 1, epochs_before[-1] + 2]


def test_train_instances_job_and_prelabel_with_it(app_env):
    """An instance model (a small Mask R-CNN from scratch) trained on the project's objects:
    COCO files of the two parts, mask AP on the held-out images, a version whose proposals
    carry scores and whose images get the borderline-score uncertainty."""
    api, tmp = app_env
    p, images, _ = _labelled_project(api, tmp, n=12, labelled=10, name="inst")
    job = api.post(f"/api/projects/{p['id']}/jobs", json={"kind": "train", "params": {
        "task": "instances", "model": "maskrcnn_resnet18_fpn", "pretrained": False,
        "model_config": {"min_size": 48, "max_size": 64, "rpn_post_nms_top_n_test": 50,
                         "box_detections_per_img": 10},
        "epochs": 1, "batch_size": 2, "val_percent": 25, "threads": 1}})
    j = wait_job(api, job["id"], timeout=300)
    assert j["state"] == "done", j
    assert j["result"]["score_name"] == "mask AP" and 0.0 <= j["result"]["score"] <= 1.0
    folder = tmp / "data" / "training" / f"job-{job['id']}" / "dataset"
    train = json.loads((folder / "train.json").read_text())
    val = json.loads((folder / "val.json").read_text())
    assert [c["name"] for c in train["categories"]] == ["disc", "never"]
    assert len(train["images"]) + len(val["images"]) == 10
    assert {a["category_id"] for a in train["annotations"]} == {p["classes"][0]["id"]}
    m = api.get(f"/api/projects/{p['id']}/models")[0]
    assert m["task"] == "instances" and m["classes"] == ["__background__", "disc", "never"]
    assert "val_AP" in m["metrics"]
    ev = api.get(f"/api/jobs/{job['id']}/events")["events"]
    assert [e["epoch"] for e in ev if e["event"] == "epoch"] == [1]
    pj = api.post(f"/api/projects/{p['id']}/jobs", json={
        "kind": "prelabel", "params": {"source": "model", "model_id": m["id"],
                                       "score_threshold": 0.0},
        "filter": {"status": "new"}})
    assert wait_job(api, pj["id"], timeout=120)["state"] == "done"
    store = api.c.app.state.store
    from masklab.app import db as _db

    with store.Session() as s:
        unc = [s.get(_db.Image, im["id"]).uncertainty for im in images[10:]]
    assert all(u is not None and 0.0 <= u <= 1.0 for u in unc)
