"""Label Studio JSON: the brush RLE against label_studio_sdk's own converter (both ways),
a file as Label Studio exports it (percent polygons, rotated rectangles, ellipses, brush,
per-region choices, a cancelled annotation), exact round trips as annotations or predictions,
conversion with COCO, one-line errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.io.convert import LabeledImage, MaskSet, convert, read_coco, write_coco
from masklab.io.labelstudio import (
    brush_decode,
    brush_encode,
    brush_to_mask,
    mask_to_brush,
    read_labelstudio,
    write_labelstudio,
)
from masklab.types import Masks


@pytest.fixture(scope="module")
def sdk_brush():
    """label_studio_sdk's ``converter/brush.py`` (loaded alone: the SDK's client is not
    needed)."""
    spec = importlib.util.find_spec("label_studio_sdk")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("label-studio-sdk is not installed")
    path = Path(spec.submodule_search_locations[0]) / "converter" / "brush.py"
    s = importlib.util.spec_from_file_location("ls_brush_oracle", path)
    mod = importlib.util.module_from_spec(s)
    s.loader.exec_module(mod)
    return mod


def _blobs(h=30, w=40, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(4):
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 3)):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(2, 12)
            m |= (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        out.append(m)
    out.append(rng.random((h, w)) > 0.7)  # salt: runs of 1 everywhere
    return out


def test_brush_rle_matches_label_studio_sdk_both_ways(sdk_brush):
    for m in _blobs():
        ours = mask_to_brush(m)
        flat = sdk_brush.decode_rle(ours)  # the SDK decodes ours
        np.testing.assert_array_equal(flat.reshape(*m.shape, 4)[..., 3] > 0, m)
        theirs = sdk_brush.mask2rle(m.astype(np.uint8) * 255)  # we decode theirs
        np.testing.assert_array_equal(brush_to_mask(theirs, *m.shape), m)
        np.testing.assert_array_equal(brush_decode(theirs), flat)
    v = np.array([7] * 70000 + [1, 2, 3] + [0] * 300, np.uint8)  # a run over 2**16
    np.testing.assert_array_equal(sdk_brush.decode_rle(brush_encode(v)), v)
    with pytest.raises(InputError, match="holds 16 values, not 12"):
        brush_to_mask(brush_encode(np.zeros(16, np.uint8)), 1, 3)


def test_reads_an_export_as_label_studio_writes_it(tmp_path, sdk_brush):
    h, w = 20, 40
    brush = np.zeros((h, w), bool)
    brush[2:6, 30:38] = True
    common = {"from_name": "label", "to_name": "image", "original_width": w,
              "original_height": h, "image_rotation": 0}
    tasks = [{"id": 7, "data": {"image": "/data/upload/3/0a1b2c3d-street.png"},
              "annotations": [
                  {"was_cancelled": True, "result": []},
                  {"result": [
                      {**common, "id": "p1", "type": "polygonlabels", "value": {
                          "points": [[5, 10], [25, 10], [25, 50], [5, 50]],
                          "polygonlabels": ["car"]}},
                      {"id": "p1", "from_name": "parked", "to_name": "image", "type": "choices",
                       "value": {"choices": ["yes"]}},
                      {**common, "id": "r1", "type": "rectanglelabels", "value": {
                          "x": 50, "y": 50, "width": 10, "height": 20, "rotation": 90,
                          "rectanglelabels": ["sign"]}},
                      {**common, "id": "b1", "type": "brushlabels", "value": {
                          "format": "rle", "rle": sdk_brush.mask2rle(brush.astype(np.uint8) * 255),
                          "brushlabels": ["car"]}},
                      {**common, "id": "k1", "type": "keypointlabels", "value": {
                          "x": 1, "y": 1, "keypointlabels": ["car"]}},
                  ]}]}]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(tasks))
    ms = read_labelstudio(f)
    assert [c["name"] for c in ms.categories] == ["car", "sign"]
    item = ms.items[0]
    assert item.file_name == "street.png" and item.image_id == 7
    assert item.masks.labels.tolist() == [1, 2, 1]
    poly, rect, got_brush = item.masks.to_dense()
    expect = np.zeros((h, w), bool)
    expect[2:10, 2:10] = True  # x 5..25 % of 40 = 2..10, y 10..50 % of 20 = 2..10
    np.testing.assert_array_equal(poly, expect)
    # 4 x 4 px rotated 90 degrees about its top-left corner (20, 10): x 16..20, y 10..14
    expect = np.zeros((h, w), bool)
    expect[10:14, 16:20] = True
    np.testing.assert_array_equal(rect, expect)
    np.testing.assert_array_equal(got_brush, brush)
    assert item.attributes == [{"parked": "yes"}, {}, {}]


def _set():
    items = []
    for i in range(2):
        ms = _blobs(seed=i)
        items.append(LabeledImage(f"im{i}.png", Masks(np.stack(ms), labels=np.array(
            [1, 2, 1, 2, 1]), scores=np.linspace(0.5, 0.9, 5)), i + 1,
            attributes=[{"occluded": "true"}, {}, {}, {}, {}]))
    return MaskSet([{"id": 1, "name": "cat"}, {"id": 2, "name": "dog & co"}], items)


def test_round_trip_as_annotations_and_predictions(tmp_path):
    ms = _set()
    files = write_labelstudio(ms, tmp_path / "tasks.json")
    assert files[1].name == "tasks.config.xml"
    assert '<Label value="dog &amp; co"/>' in files[1].read_text()
    back = read_labelstudio(tmp_path / "tasks.json")
    for a, b in zip(ms.items, back.items, strict=True):
        assert b.file_name == a.file_name
        np.testing.assert_array_equal(a.masks.to_dense(), b.masks.to_dense())
        np.testing.assert_array_equal(a.masks.labels, b.masks.labels)
        assert b.attributes[0] == {"occluded": "true"}
    write_labelstudio(ms, tmp_path / "pred.json", as_predictions=True)
    doc = json.loads((tmp_path / "pred.json").read_text())
    assert "annotations" not in doc[0] and doc[0]["predictions"][0]["model_version"] == "masklab"
    back = read_labelstudio(tmp_path / "pred.json", source="predictions")
    np.testing.assert_allclose(back.items[0].masks.scores, ms.items[0].masks.scores)
    # polygons: solid blobs survive within COCO's rasterization
    write_labelstudio(ms, tmp_path / "poly.json", shapes="polygon")
    poly = read_labelstudio(tmp_path / "poly.json").items[0].masks.to_dense()
    ref = ms.items[0].masks.to_dense()
    for k in range(4):
        inter, union = (poly[k] & ref[k]).sum(), (poly[k] | ref[k]).sum()
        assert inter / union > 0.85


def test_coco_round_trip_and_guessed_format(tmp_path):
    ms = _set()
    write_coco(ms, tmp_path / "a.json")
    convert(tmp_path / "a.json", tmp_path / "ls.json", dst_format="labelstudio")
    convert(tmp_path / "ls.json", tmp_path / "b.json", dst_format="coco")  # guessed: tasks
    a, b = read_coco(tmp_path / "a.json"), read_coco(tmp_path / "b.json")
    for x, y in zip(a.items, b.items, strict=True):
        np.testing.assert_array_equal(x.masks.to_dense(), y.masks.to_dense())


def test_one_line_errors(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('[{"nodata": 1}]')
    with pytest.raises(InputError, match="x.json.*task 0: not a Label Studio task"):
        read_labelstudio(f)
    f.write_text('[{"data": {"image": "a.png"}, "annotations": [{"result": [{"type": '
                 '"brushlabels", "original_width": 2, "original_height": 2, "value": '
                 '{"rle": [1, 2, 3], "brushlabels": ["a"]}}]}]}]')
    with pytest.raises(InputError, match="x.json.*brush RLE is malformed"):
        read_labelstudio(f)
