"""The app's SAM path on tiny random SAM 2.1 weights saved to a folder: the embedding is cached
on disk in fp16 keyed by image hash and model, loaded back after a restart, and the click's
mask equals masklab's SamBackend on the same (fp16-rounded) embedding."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("transformers")

from fastapi.testclient import TestClient

from masklab import rle
from masklab.app import create_app
from tests.app.helpers import Api, make_images
from tests.interactive.test_sam import _tiny_family


def test_sam_clicks_use_a_disk_cached_fp16_embedding(tmp_path):
    import torch

    from masklab.interactive.sam import SamBackend
    from masklab.io.images import read_image
    from masklab.types import Prompts

    _tiny_family("sam2", tmp_path / "sam")
    make_images(tmp_path / "data" / "imgs")
    body = {"points": [[80, 60], [10, 10]], "labels": [1, 0]}

    def run():
        app = create_app(tmp_path / "data", backend=str(tmp_path / "sam"))
        with TestClient(app) as c:
            api = Api(c)
            if not api.get("/api/projects"):
                p = api.post("/api/projects", json={"name": "p", "classes": ["box"]})
                api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
            seg = api.post("/api/images/1/segment", json=body)
            box = api.post("/api/images/1/segment", json={"box": [30, 20, 130, 100]})
            refine = api.post("/api/images/1/segment", json={
                "points": [[60, 50]], "labels": [1], "mask": box["masks"][0]["mask"]})
            return app.state.segmenter, [rle.decode([r["masks"][0]["mask"]])[0]
                                         for r in (seg, box, refine)]

    seg1, masks1 = run()
    files = list((tmp_path / "data" / "cache" / "embeddings").rglob("*.safetensors"))
    assert len(files) == 1
    from masklab.app.store import file_sha256

    assert files[0].stem == file_sha256(tmp_path / "data" / "imgs" / "a.png")
    from safetensors import safe_open

    with safe_open(str(files[0]), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys() if
                   k.startswith("emb"))
    assert len(seg1.stats["embed_seconds"]) == 1
    seg2, masks2 = run()  # a restarted server: the embedding comes from disk
    assert seg2.stats["embed_seconds"] == [] and seg2.stats["disk_hits"] == 1
    for a, b in zip(masks1, masks2, strict=True):
        np.testing.assert_array_equal(a, b)
    # oracle: masklab's SamBackend on the same embedding rounded to fp16
    ref = SamBackend(tmp_path / "sam")
    state = ref.set_image(read_image(tmp_path / "data" / "imgs" / "a.png"))

    def half(x):
        return x.half().float() if isinstance(x, torch.Tensor) else [half(e) for e in x]

    state["embeddings"] = half(state["embeddings"])
    want, _, _ = ref.predict(state, Prompts(points=np.array(body["points"], float),
                                            point_labels=np.array(body["labels"])),
                             multimask=False)
    np.testing.assert_array_equal(masks1[0], want[0])
    want_box, _, _ = ref.predict(state, Prompts(box=np.array([30, 20, 130, 100], float)),
                                 multimask=False)
    np.testing.assert_array_equal(masks1[1], want_box[0])
    want_ref, _, _ = ref.predict(state, Prompts(points=np.array([[60, 50]], float),
                                                point_labels=np.array([1]),
                                                mask=want_box[0]), multimask=False)
    np.testing.assert_array_equal(masks1[2], want_ref[0])


def test_prefetch_computes_the_next_images(tmp_path):
    import time

    _tiny_family("sam2", tmp_path / "sam")
    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend=str(tmp_path / "sam"), prefetch=2)
    with TestClient(app) as c:
        api = Api(c)
        p = api.post("/api/projects", json={"name": "p", "classes": ["box"]})
        api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
        api.post("/api/images/1/embed")
        cache = tmp_path / "data" / "cache" / "embeddings"
        deadline = time.monotonic() + 60
        while len(list(cache.rglob("*.safetensors"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(cache.rglob("*.safetensors"))) == 3  # a.png + the next two
        seg = app.state.segmenter
        n = len(seg.stats["embed_seconds"])
        api.get("/api/images/2/annotations")
        api.post("/api/images/2/segment", json={"points": [[40, 50]], "labels": [1]})
        assert len(seg.stats["embed_seconds"]) == n  # already there: no new embedding


def test_auto_backend_clicks_use_grabcut_while_sam_downloads(tmp_path, monkeypatch):
    """``--backend auto``: SAM loads in the background from the server's start; until it is
    ready a click is answered at once by GrabCut and /api/segmenter reports the download's
    progress; then clicks go to SAM. A SAM that cannot be had leaves GrabCut, said so."""
    import threading

    import masklab.app.segment as segment
    from masklab.errors import OfflineError
    from masklab.interactive.sam import SamBackend

    _tiny_family("sam2", tmp_path / "sam")
    truth = make_images(tmp_path / "data" / "imgs")
    release = threading.Event()
    dl = tmp_path / "hub"
    dl.mkdir()

    def slow_sam(device):
        assert release.wait(60)
        return SamBackend(tmp_path / "sam", device=device)

    monkeypatch.setattr(segment, "load_default_sam", slow_sam)
    monkeypatch.setattr(segment, "default_sam_folder", lambda: dl)
    app = create_app(tmp_path / "data", backend="auto")
    click = {"points": [[80, 60]], "labels": [1]}
    with TestClient(app) as c:
        api = Api(c)
        s = api.get("/api/segmenter")
        assert s["state"] == "loading" and s["backend"] == "grabcut" and not s["sam"]
        assert "GrabCut" in s["message"]
        p = api.post("/api/projects", json={"name": "p", "classes": ["box"]})
        api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
        r = api.post("/api/images/1/segment", json=click)
        assert r["backend"] == "grabcut"
        assert (rle.decode([r["masks"][0]["mask"]])[0] == truth["a.png"]).mean() > 0.95
        (dl / "blob.incomplete").write_bytes(b"\0" * 3_000_000)  # the download grows
        for _ in range(40):
            s = api.get("/api/segmenter")
            if "MB so far" in s["message"]:
                break
            threading.Event().wait(0.1)
        assert s["message"].startswith("downloading SAM 2.1 Hiera-T weights: 3 MB so far")
        assert s["bytes"] == 3_000_000
        release.set()
        assert app.state.segmenter.wait_ready(60)
        s = api.get("/api/segmenter")
        assert s == {"backend": "sam", "sam": True, "state": "ready",
                     "message": "SAM 2.1 Hiera-T ready"}
        r = api.post("/api/images/1/segment", json=click)
        assert r["backend"] == "sam"  # its own state: the GrabCut state is not reused

    def offline(device):
        raise OfflineError("weights 'hf/sam2.1-hiera-tiny' are not in the cache")

    monkeypatch.setattr(segment, "load_default_sam", offline)
    app = create_app(tmp_path / "data2", backend="auto")
    with TestClient(app) as c:
        app.state.segmenter.wait_ready(60)
        s = Api(c).get("/api/segmenter")
        assert s["state"] == "failed" and s["backend"] == "grabcut"
        assert "not in the cache" in s["message"] and "clicks use GrabCut" in s["message"]
