"""labelme JSON: shapes rasterized as labelme does (checked against labelme's own
``shape_to_mask``), groups as one object, exact round trips (polygons where they hold the mask,
a mask shape where they do not), conversion from and to COCO, one-line errors."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masklab.errors import InputError
from masklab.io.convert import LabeledImage, MaskSet, convert, read_coco, write_coco
from masklab.io.labelme import mask_shapes, read_labelme, shape_mask, write_labelme
from masklab.types import Masks


@pytest.fixture(scope="module")
def labelme_shape_to_mask():
    """labelme's own ``shape_to_mask`` (its ``utils/shape.py``, loaded without the GUI)."""
    spec = importlib.util.find_spec("labelme")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("labelme is not installed")
    path = Path(spec.submodule_search_locations[0]) / "utils" / "shape.py"
    saved = {k: sys.modules.get(k) for k in ("labelme", "labelme._label_file")}
    pkg = types.ModuleType("labelme")
    pkg.__path__ = [str(path.parents[1])]
    lf = types.ModuleType("labelme._label_file")
    lf.ShapeDict = dict
    sys.modules.update({"labelme": pkg, "labelme._label_file": lf})
    try:
        s = importlib.util.spec_from_file_location("labelme_shape_oracle", path)
        mod = importlib.util.module_from_spec(s)
        s.loader.exec_module(mod)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod.shape_to_mask


def _objects(h=40, w=56):
    """Shapes a mask tool makes: a disc, a ring (a hole), two parts, a thin line, a pixel."""
    yy, xx = np.mgrid[:h, :w]
    disc = (xx - 14) ** 2 + (yy - 12) ** 2 < 49
    ring = ((xx - 40) ** 2 + (yy - 26) ** 2 < 100) & ((xx - 40) ** 2 + (yy - 26) ** 2 >= 16)
    parts = np.zeros((h, w), bool)
    parts[28:36, 2:9] = True
    parts[30:38, 14:20] = True
    line = np.zeros((h, w), bool)
    line[2, 30:50] = True
    dot = np.zeros((h, w), bool)
    dot[20, 25] = True
    return np.stack([disc, ring, parts, line, dot])


def _set(n_images=2):
    items = []
    for i in range(n_images):
        m = _objects()
        items.append(LabeledImage(f"img{i}.png", Masks(m, labels=np.array([1, 2, 1, 2, 1])),
                                  i + 1))
    return MaskSet([{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}], items)


def test_round_trip_is_exact_and_uses_polygons_where_they_hold(tmp_path):
    ms = _set()
    files = write_labelme(ms, tmp_path / "lm")
    assert [f.name for f in files] == ["img0.json", "img1.json"]
    doc = json.loads(files[0].read_text())
    kinds = [(s["label"], s["shape_type"], s["group_id"]) for s in doc["shapes"]]
    # the disc and both parts (one group) as polygons; the ring (a hole) and the dot as masks
    assert kinds[0] == ("cat", "polygon", None)
    assert ("dog", "mask", None) in kinds
    parts = [k for k in kinds if k[2] is not None]
    assert len(parts) == 2 and parts[0] == parts[1] == ("cat", "polygon", 3)
    back = read_labelme(tmp_path / "lm")
    assert [c["name"] for c in back.categories] == ["cat", "dog"]
    for a, b in zip(ms.items, back.items, strict=True):
        assert b.file_name == a.file_name
        np.testing.assert_array_equal(b.masks.to_dense(), a.masks.to_dense())
        np.testing.assert_array_equal(b.masks.labels, a.masks.labels)


def test_polygons_only_lose_the_hole_and_say_so(tmp_path, caplog):
    ms = _set(1)
    write_labelme(ms, tmp_path / "lm", shapes="polygon")
    assert "lose pixels" in caplog.text
    back = read_labelme(tmp_path / "lm").items[0].masks.to_dense()
    ring = ms.items[0].masks.to_dense()[1]
    yy, xx = np.mgrid[:40, :56]
    hole = (xx - 40) ** 2 + (yy - 26) ** 2 < 16
    np.testing.assert_array_equal(back[1], ring | hole)  # the hole is filled
    np.testing.assert_array_equal(back[0], ms.items[0].masks.to_dense()[0])


def test_written_polygons_draw_the_same_with_labelmes_own_rasterizer(labelme_shape_to_mask):
    rng = np.random.default_rng(0)
    h, w = 64, 80
    for _ in range(30):  # random blobs: unions of ellipses
        yy, xx = np.mgrid[:h, :w]
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(5, w - 5), rng.uniform(5, h - 5)
            a, b = rng.uniform(2, 15), rng.uniform(2, 15)
            m |= ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 < 1
        shapes, exact = mask_shapes(m, "x", 1)
        drawn = np.zeros((h, w), bool)
        for s in shapes:
            if s["shape_type"] == "polygon":
                theirs = labelme_shape_to_mask((h, w), s["points"], "polygon")
                np.testing.assert_array_equal(theirs, shape_mask(s, h, w))
                drawn |= theirs
            else:
                drawn |= shape_mask(s, h, w)
        assert exact
        np.testing.assert_array_equal(drawn, m)


def test_every_shape_type_as_labelme_draws_it(tmp_path, labelme_shape_to_mask):
    h, w = 30, 40
    patch = np.zeros((5, 6), bool)
    patch[1:4, 2:5] = True
    shapes = [
        {"label": "r", "points": [[3, 4], [12.5, 9]], "shape_type": "rectangle"},
        {"label": "c", "points": [[25, 15], [29, 18]], "shape_type": "circle"},
        {"label": "p", "points": [[20, 5]], "shape_type": "point"},
        {"label": "l", "points": [[2, 25], [30, 27]], "shape_type": "line"},
        {"label": "s", "points": [[2, 2], [10, 2], [10, 8]], "shape_type": "linestrip"},
        {"label": "o", "points": [[30, 2], [36, 4], [34, 9], [28, 7]],
         "shape_type": "oriented_rectangle"},
        {"label": "g", "points": [[5, 12], [15, 12], [10, 20]], "shape_type": "polygon",
         "group_id": 7},
        {"label": "g", "points": [[16, 22], [22, 22], [19, 28]], "shape_type": "polygon",
         "group_id": 7},
    ]
    import inspect

    source = inspect.getsource(labelme_shape_to_mask)
    for s in shapes:
        if s["shape_type"] == "oriented_rectangle" and "oriented_rectangle" not in source:
            theirs = None  # labelme before 7: no oriented rectangles
        elif s["shape_type"] == "linestrip" and "curve" not in source:
            theirs = None  # labelme before 7.1 drew line strips with notched joints
        else:
            theirs = labelme_shape_to_mask((h, w), s["points"], s["shape_type"])
        if theirs is not None:
            np.testing.assert_array_equal(shape_mask(s, h, w), theirs, err_msg=s["label"])
    buf = io.BytesIO()
    Image.fromarray(patch.astype(np.uint8)).save(buf, format="PNG")
    shapes.append({"label": "m", "points": [[30, 20], [35, 24]], "shape_type": "mask",
                   "mask": base64.b64encode(buf.getvalue()).decode()})
    doc = {"version": "5.5.0", "shapes": shapes, "imagePath": "a.png", "imageData": None,
           "imageHeight": h, "imageWidth": w}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    ms = read_labelme(tmp_path)
    m = ms.items[0].masks
    names = [c["name"] for c in ms.categories]
    assert names == ["r", "c", "p", "l", "s", "o", "g", "m"]  # the group is one object
    assert len(m) == 8
    rect = np.zeros((h, w), bool)
    rect[4:10, 3:13] = True  # PIL: inclusive corners
    np.testing.assert_array_equal(m.to_dense()[0], rect)
    g = m.to_dense()[6]
    assert g[15, 10] and g[25, 19]  # both parts
    expect = np.zeros((h, w), bool)
    expect[21:24, 32:35] = True  # the patch at (30, 20)
    np.testing.assert_array_equal(m.to_dense()[7], expect)


def test_coco_to_labelme_to_coco_keeps_one_object_per_multi_part_annotation(tmp_path):
    ms = _set()
    write_coco(ms, tmp_path / "a.json")
    convert(tmp_path / "a.json", tmp_path / "lm", dst_format="labelme")
    convert(tmp_path / "lm", tmp_path / "b.json")  # guessed: a labelme folder
    a, b = read_coco(tmp_path / "a.json"), read_coco(tmp_path / "b.json")
    assert sum(len(i.masks) for i in a.items) == sum(len(i.masks) for i in b.items) == 10
    for x, y in zip(a.items, b.items, strict=True):
        np.testing.assert_array_equal(x.masks.to_dense(), y.masks.to_dense())


def test_convert_cli_and_one_line_errors(tmp_path):
    from click.testing import CliRunner

    from masklab.cli import main

    write_coco(_set(1), tmp_path / "a.json")
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "a.json"), str(tmp_path / "lm"),
                                  "--to", "labelme"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "lm" / "img0.json").is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text('{"shapes": [{"label": "a", "points": [[1, 2]], '
                                '"shape_type": "polygon"}], "imageHeight": 5, "imageWidth": 5}')
    with pytest.raises(InputError, match="x.json.*polygon needs 3 points"):
        read_labelme(bad)
    (bad / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="x.json.*not a labelme JSON"):
        read_labelme(bad)
    (bad / "x.json").write_text('{"shapes": [], "imagePath": "gone.png"}')
    with pytest.raises(InputError, match="no imageHeight"):
        read_labelme(bad)
    r = CliRunner().invoke(main, ["convert", str(bad), str(tmp_path / "o.json"),
                                  "--from", "labelme"])
    assert r.exit_code != 0 and "no imageHeight" in r.output
