"""Videos in the app: a clip imported from a folder becomes frame images; an object drawn on
one frame is tracked through the clip (the weight-free flow backend), a corrected frame stops
the tracking, and the DAVIS export holds one object id across the frames."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")

from fastapi.testclient import TestClient

from masklab import rle
from masklab.app import create_app
from tests.app.helpers import Api

N, H, W, S = 8, 96, 128, 30  # frames, size, square side


def _clip(path):
    """A textured square moving 4 px right per frame over a smooth background."""
    from masklab.io.video import VideoWriter

    rng = np.random.default_rng(0)
    tex = rng.integers(60, 255, (S, S, 3), np.uint8)
    yy, xx = np.mgrid[:H, :W]
    bg = np.dstack([xx * 0.5 + 20, yy * 0.5 + 20, np.full((H, W), 40.0)]).astype(np.uint8)
    truth = []
    with VideoWriter(path, fps=10, crf=0) as vw:
        for t in range(N):
            f = bg.copy()
            x0, y0 = 20 + 4 * t, 30
            f[y0:y0 + S, x0:x0 + S] = tex
            vw.write(f)
            m = np.zeros((H, W), bool)
            m[y0:y0 + S, x0:x0 + S] = True
            truth.append(m)
    return truth


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_video_import_track_correct_and_davis_export(tmp_path):
    (tmp_path / "data" / "media").mkdir(parents=True)
    truth = _clip(tmp_path / "data" / "media" / "clip.mp4")
    app = create_app(tmp_path / "data", backend="grabcut")
    with TestClient(app) as c:
        api = Api(c)
        p = api.post("/api/projects", json={"name": "v", "classes": ["square"]})
        r = api.post(f"/api/projects/{p['id']}/import", json={"folder": "media"})
        assert r["added"] == N
        imgs = api.get(f"/api/projects/{p['id']}/images?frames=all")["items"]
        assert [i["file_name"] for i in imgs] == [f"clip/{t:05d}.jpg" for t in range(N)]
        assert [i["frame"] for i in imgs] == list(range(N)) and imgs[0]["video"] == "clip"
        frames = api.get(f"/api/images/{imgs[3]['id']}/frames")
        assert [f["frame"] for f in frames] == list(range(N))
        ids = [f["id"] for f in frames]
        # importing again adds nothing
        assert api.post(f"/api/projects/{p['id']}/import", json={"folder": "media"})[
            "added"] == 0
        a = api.post(f"/api/images/{ids[0]}/annotations", json={
            "class_id": 1, "mask": rle.encode(truth[0])[0]})["annotation"]
        r = api.post(f"/api/annotations/{a['id']}/track", json={"direction": "forward"})
        assert r["frames"] == list(range(1, N)) and r["stopped_at"] is None
        track_id = r["track_id"]
        for t in range(1, N):
            anns = api.get(f"/api/images/{ids[t]}/annotations")["annotations"]
            assert len(anns) == 1 and anns[0]["track_id"] == track_id
            assert anns[0]["source"] == "track"
            assert _iou(rle.decode([anns[0]["mask"]])[0], truth[t]) > 0.8, t
        # a correction on frame 4 (by hand): tracking again from 0 stops there
        a4 = api.get(f"/api/images/{ids[4]}/annotations")["annotations"][0]
        api.patch(f"/api/annotations/{a4['id']}", json={"mask": rle.encode(truth[4])[0],
                                                          "source": "hand"})
        before6 = api.get(f"/api/images/{ids[6]}/annotations")["annotations"][0]
        r = api.post(f"/api/annotations/{a['id']}/track", json={"direction": "forward"})
        assert r["frames"] == [1, 2, 3] and r["stopped_at"] == 4
        assert api.get(f"/api/images/{ids[6]}/annotations")["annotations"][0] == before6
        # backwards from the last frame, after deleting frames 5..7's masks
        for t in (5, 6):
            x = api.get(f"/api/images/{ids[t]}/annotations")["annotations"][0]
            api.delete(f"/api/annotations/{x['id']}")
        a7 = api.get(f"/api/images/{ids[7]}/annotations")["annotations"][0]
        r = api.post(f"/api/annotations/{a7['id']}/track", json={"direction": "backward",
                                                                 "frames": 10})
        assert r["frames"] == [6, 5] and r["stopped_at"] == 4
        api.post(f"/api/annotations/{a['id']}/track", json={"direction": "sideways"},
                 expect=400)
        # DAVIS export: one sequence, one object id on every frame
        ex = api.post(f"/api/projects/{p['id']}/export", json={"format": "davis"})
        z = zipfile.ZipFile(io.BytesIO(api.get(ex["url"]).content))
        pngs = sorted(n for n in z.namelist() if n.endswith(".png"))
        assert pngs == [f"Annotations/480p/clip/{t:05d}.png" for t in range(N)]
        from PIL import Image

        ids_seen = set()
        for t, n in enumerate(pngs):
            lab = np.asarray(Image.open(io.BytesIO(z.read(n))))
            ids_seen |= set(np.unique(lab)) - {0}
            assert _iou(lab > 0, truth[t]) > 0.8
        assert len(ids_seen) == 1
        # a clip can be uploaded too
        data = (tmp_path / "data" / "media" / "clip.mp4").read_bytes()
        r = api.post(f"/api/projects/{p['id']}/upload",
                     files={"files": ("walk.mp4", data, "video/mp4")})
        assert r["added"] == N and r["images"][0]["file_name"] == "walk/00000.jpg"
        # a still image is not a video
        still = api.post(f"/api/images/{ids[0]}/annotations", json={
            "class_id": 1, "mask": rle.encode(truth[0])[0]})
        assert still["annotation"]["track_id"] is None
