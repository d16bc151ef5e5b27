"""CVAT for images / video 1.1 XML: CVAT's mask RLE (by hand), a file as CVAT writes it
(masks at an offset, polygons, boxes, groups, attributes, occluded, z order, points left out),
exact round trips, tracks with keyframes and ``outside`` → track ids → DAVIS, conversion and
one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.io.convert import FORMATS, LabeledImage, MaskSet, convert, read_coco, write_coco
from masklab.io.cvat import read_cvat, rle_decode, rle_encode, write_cvat
from masklab.types import Masks


def test_rle_by_hand():
    # a 4 x 3 box: row 0 "0110", row 1 "1111", row 2 "0000" -> runs 1,2,1,4,4
    m = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    assert rle_encode(m) == "1, 2, 1, 4, 4"
    np.testing.assert_array_equal(rle_decode("1, 2, 1, 4, 4", 4, 3), m)
    full = np.ones((2, 2), bool)
    assert rle_encode(full) == "0, 4"  # starts with a (zero) background run
    np.testing.assert_array_equal(rle_decode("0, 4", 2, 2), full)
    with pytest.raises(InputError, match="covers 5 pixels"):
        rle_decode("1, 4", 2, 2)


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><size>1</size><labels>
    <label><name>car</name></label><label><name>person</name></label><label><name>tree</name></label>
  </labels></task></meta>
  <image id="0" name="street/a.png" width="12" height="10">
    <mask label="person" source="manual" occluded="1" rle="1, 2, 1, 4, 4" left="5" top="6"
          width="4" height="3" z_order="2">
      <attribute name="pose">standing</attribute>
    </mask>
    <polygon label="car" source="manual" occluded="0"
             points="1.00,1.00;5.00,1.00;5.00,4.00;1.00,4.00" z_order="0" group_id="1">
      <attribute name="parked">true</attribute>
    </polygon>
    <box label="car" source="manual" occluded="0" xtl="8" ytl="1" xbr="11" ybr="3" z_order="0"
         group_id="1"/>
    <points label="tree" source="manual" occluded="0" points="2.0,8.0" z_order="0"/>
  </image>
</annotations>
"""


def test_reads_a_file_as_cvat_writes_it(tmp_path):
    f = tmp_path / "annotations.xml"
    f.write_text(CVAT_XML)
    ms = read_cvat(f)
    assert [c["name"] for c in ms.categories] == ["car", "person", "tree"]
    item = ms.items[0]
    assert item.file_name == "street/a.png" and item.masks.size == (10, 12)
    # z order: the car group (0) first, the person (2) on top; the points are left out
    assert item.masks.labels.tolist() == [1, 2]
    car, person = item.masks.to_dense()
    expect = np.zeros((10, 12), bool)
    expect[1:4, 1:5] = True  # the polygon as COCO rasterizes it
    expect[1:3, 8:11] = True  # the box, same group
    np.testing.assert_array_equal(car, expect)
    expect = np.zeros((10, 12), bool)
    expect[6:9, 5:9] = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(person, expect)
    assert item.attributes == [{"occluded": False, "z_order": 0, "parked": True},
                               {"occluded": True, "z_order": 2, "pose": "standing"}]


def _items(n=3, h=20, w=24, tracks=False):
    rng = np.random.default_rng(1)
    items = []
    yy, xx = np.mgrid[:h, :w]
    for i in range(n):
        a = (xx - 6 - i) ** 2 + (yy - 8) ** 2 < 20
        b = ((xx - 17) ** 2 + (yy - 12) ** 2 < 30) & ~((xx - 17) ** 2 + (yy - 12) ** 2 < 4)
        b |= (rng.random((h, w)) > 0.97) & (yy < 4)  # specks: several parts
        masks = Masks(np.stack([a, b]), labels=np.array([1, 2]),
                      track_ids=np.array([1, 2]) if tracks else None)
        items.append(LabeledImage(f"f{i:02d}.png", masks, i + 1,
                                  attributes=[{"occluded": bool(i % 2), "z_order": 0,
                                               "color": "red"},
                                              {"occluded": False, "z_order": 1}]))
    return MaskSet([{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}], items)


def test_images_round_trip_exact_with_attributes(tmp_path):
    ms = _items()
    write_cvat(ms, tmp_path / "a.xml")
    back = read_cvat(tmp_path / "a.xml")
    assert [c["name"] for c in back.categories] == ["cat", "dog"]
    for a, b in zip(ms.items, back.items, strict=True):
        assert a.file_name == b.file_name
        np.testing.assert_array_equal(a.masks.to_dense(), b.masks.to_dense())
        np.testing.assert_array_equal(a.masks.labels, b.masks.labels)
        assert b.attributes == a.attributes
    # polygons: solid shapes survive, the hole and the specks are what polygons lose
    write_cvat(ms, tmp_path / "p.xml", shapes="polygon")
    poly = read_cvat(tmp_path / "p.xml").items[0].masks.to_dense()
    np.testing.assert_array_equal(poly[0], ms.items[0].masks.to_dense()[0])


def test_video_tracks_with_outside_and_to_davis(tmp_path):
    ms = _items(5, tracks=True)
    # object 2 leaves the video at frame 2 and comes back at frame 4
    for k in (2, 3):
        it = ms.items[k]
        it.masks = it.masks[[0]]
        it.attributes = it.attributes[:1]
    write_cvat(ms, tmp_path / "v.xml", video=True)
    text = (tmp_path / "v.xml").read_text()
    assert text.count("<track ") == 2 and 'outside="1"' in text
    back = read_cvat(tmp_path / "v.xml")
    assert [len(i.masks) for i in back.items] == [2, 2, 1, 1, 2]
    for a, b in zip(ms.items, back.items, strict=True):
        np.testing.assert_array_equal(a.masks.to_dense(), b.masks.to_dense())
        np.testing.assert_array_equal(b.masks.track_ids, a.masks.track_ids)
    assert back.items[0].file_name == "frame_000000.png"
    convert(tmp_path / "v.xml", tmp_path / "davis", dst_format="davis")
    from masklab.io.convert import read_davis

    d = read_davis(tmp_path / "davis")
    assert [len(i.masks) for i in d.items] == [2, 2, 1, 1, 2]
    got, want = d.items[4].masks.to_dense(), ms.items[4].masks.to_dense()
    # an id map: one object per pixel where they overlap, nothing else changes
    assert (got <= want).all() and (got.any(0) == want.any(0)).all()
    assert (want.sum(0) > 1).sum() == (want & ~got).sum()


def test_coco_round_trip_keeps_attributes_and_cli(tmp_path):
    from click.testing import CliRunner

    from masklab.cli import main
    from masklab.cli.general import FORMATS as CLI_FORMATS

    assert CLI_FORMATS == FORMATS
    ms = _items()
    write_cvat(ms, tmp_path / "a.xml")
    r = CliRunner().invoke(main, ["convert", str(tmp_path / "a.xml"), str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    coco = read_coco(tmp_path / "a.json")
    for a, b in zip(ms.items, coco.items, strict=True):
        np.testing.assert_array_equal(a.masks.to_dense(), b.masks.to_dense())
    write_coco(ms, tmp_path / "b.json")
    convert(tmp_path / "b.json", tmp_path / "b.xml")
    assert read_cvat(tmp_path / "b.xml").items[2].masks.labels.tolist() == [1, 2]


def test_malformed_files_get_one_line_errors(tmp_path):
    f = tmp_path / "x.xml"
    f.write_text("<annotations><image id='0' name='a' width='4'/></annotations>")
    with pytest.raises(InputError, match="x.xml.*needs id, width and height"):
        read_cvat(f)
    f.write_text("<nope/>")
    with pytest.raises(InputError, match="root <nope>"):
        read_cvat(f)
    f.write_text("<annotations><image")
    with pytest.raises(InputError, match="not a CVAT XML file"):
        read_cvat(f)
    f.write_text("<annotations><image id='0' name='a' width='4' height='4'>"
                 "<polygon label='a' points='1,1;2,x'/></image></annotations>")
    with pytest.raises(InputError, match="polygon of label 'a' is malformed"):
        read_cvat(f)
