"""Text prompt → proposals and alpha matting of a selection, through the app's API.

Text: a tiny random OWLv2 saved to a folder and loaded by the app's detector loader; the
proposals must be the label pipeline's own (detector + post-processing + GrabCut in each
box), the class ids the project's. Matting: an image composited from a known alpha ramp over
two flat colours, where the closed-form solution is the true alpha."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from masklab import rle
from masklab.app import create_app
from tests.app.helpers import Api, make_images


def test_text_prompt_proposals_equal_the_label_pipeline(tmp_path):
    pytest.importorskip("transformers")
    from masklab.grounding.detectors import load_detector
    from masklab.grounding.label import LabelSettings, grabcut_box, postprocess
    from masklab.io.images import read_image
    from tests.grounding.tiny import owl

    owl(tmp_path / "owl")
    make_images(tmp_path / "data" / "imgs")
    app = create_app(tmp_path / "data", backend="grabcut", detector=str(tmp_path / "owl"))
    with TestClient(app) as c:
        api = Api(c)
        p = api.post("/api/projects", json={"name": "p", "classes": ["cat", "dog"]})
        api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
        r = api.post("/api/images/1/text", json={"text": "dog, ball", "threshold": 0.0,
                                                  "limit": 5})
        got = r["proposals"]
        # the project's classes when no text is given
        r2 = api.post("/api/images/1/text", json={"threshold": 0.0, "limit": 3})
    assert 1 <= len(got) <= 5
    det = load_detector(str(tmp_path / "owl"), threshold=0.0)
    image = read_image(tmp_path / "data" / "imgs" / "a.png")
    want = postprocess(det.detect(image, ["dog", "ball"]),
                       LabelSettings(["dog", "ball"], "owl", "grabcut"))
    want = want.select(np.arange(min(5, len(want))))
    assert len(got) == len(want)
    for g, k in zip(got, range(len(want)), strict=True):
        np.testing.assert_allclose(g["box"], want.boxes[k], atol=0.01)
        assert g["label"] == want.classes[int(want.labels[k])]
        assert g["class_id"] == (2 if g["label"] == "dog" else None)
        np.testing.assert_array_equal(rle.decode([g["mask"]])[0],
                                      grabcut_box(image, want.boxes[k]))
    assert {q["label"] for q in r2["proposals"]} <= {"cat", "dog"}


def _soft_object(path):
    """A disc whose edge is a linear alpha ramp 6 px wide, red over blue."""
    from PIL import Image

    h, w = 90, 120
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(xx - 60, yy - 45)
    alpha = np.clip((30 - d) / 6 + 0.5, 0, 1)
    fg, bg = np.array([220, 40, 40]), np.array([30, 60, 200])
    img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    Image.fromarray(np.round(img).astype(np.uint8)).save(path)
    return alpha


def test_matte_of_a_selection_recovers_the_true_alpha(tmp_path):
    (tmp_path / "data" / "imgs").mkdir(parents=True)
    true_alpha = _soft_object(tmp_path / "data" / "imgs" / "disc.png")
    app = create_app(tmp_path / "data", backend="grabcut")
    with TestClient(app) as c:
        api = Api(c)
        p = api.post("/api/projects", json={"name": "p", "classes": ["disc"]})
        api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
        a = api.post("/api/images/1/annotations", json={"class_id": 1, "mask": rle.encode(
            true_alpha >= 0.5)[0]})["annotation"]
        api.get(f"/api/annotations/{a['id']}/alpha", expect=404)
        r = api.post(f"/api/annotations/{a['id']}/matte", json={"band": 6})
        assert r["partial_pixels"] > 100
        from PIL import Image

        png = api.get(r["url"]).content
        got = np.asarray(Image.open(io.BytesIO(png))).astype(float) / 255
        cut = Image.open(io.BytesIO(api.get(r["cutout"]).content))
        assert cut.mode == "RGBA"
        # closed-form matting is exact on a two-colour image: the true ramp comes back
        band = (true_alpha > 0.02) & (true_alpha < 0.98)
        assert np.abs(got - true_alpha)[band].mean() < 0.03
        assert np.abs(got - true_alpha).max() < 0.1
        # a trimap-brush stroke marks part of the disc as background
        api.post(f"/api/annotations/{a['id']}/matte", json={"band": 6, "strokes": [
            {"points": [[60, 30], [60, 60]], "width": 8, "kind": "bg"}]})
        got2 = np.asarray(Image.open(io.BytesIO(api.get(r["url"]).content)))
        assert got2[45, 60] == 0 and got2[45, 45] == 255
        api.post(f"/api/annotations/{a['id']}/matte", json={"band": 0}, expect=400)
        api.post(f"/api/annotations/{a['id']}/matte", json={"strokes": [
            {"points": [[1, 1]], "kind": "maybe"}]}, expect=400)
        # the alpha export: the matte as a PNG per annotation
        ex = api.post(f"/api/projects/{p['id']}/export", json={"format": "alpha"})
        z = zipfile.ZipFile(io.BytesIO(api.get(ex["url"]).content))
        name = f"disc_{a['id']}.png"
        assert name in z.namelist() and "alpha.json" in z.namelist()
        exported = np.asarray(Image.open(io.BytesIO(z.read(name))))
        np.testing.assert_array_equal(exported, got2)


def test_text_proposals_from_sam3_are_its_own_masks(tmp_path):
    """A text → mask detector (SAM 3): the proposals carry its instance masks, not masks
    cut again from its boxes."""
    pytest.importorskip("transformers")
    from masklab.app.segment import Segmenter
    from masklab.grounding.detectors import load_detector
    from masklab.grounding.label import LabelSettings, postprocess
    from masklab.io.images import read_image
    from tests.grounding.tiny import sam3

    sam3(tmp_path / "s3")
    make_images(tmp_path / "imgs")
    seg = Segmenter("grabcut", detector=str(tmp_path / "s3"))
    path = tmp_path / "imgs" / "a.png"
    found, masks, scores = seg.text("a", path, ["cat"], threshold=0.2)
    raw = load_detector(tmp_path / "s3", box_threshold=0.2).detect(read_image(path), ["cat"])
    want = postprocess(raw, LabelSettings(["cat"], "sam3", "grabcut"))  # NMS as labelling
    assert len(found) == len(want) > 0
    np.testing.assert_array_equal(masks, want.masks)
    np.testing.assert_allclose(scores, want.scores)
