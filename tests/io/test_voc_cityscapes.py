"""Pascal VOC and Cityscapes: files laid out as their datasets are (void border, objects per
class, label ids × 1000), exact round trips where an index map allows, conversion, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.io.cityscapes import read_cityscapes, write_cityscapes
from masklab.io.convert import LabeledImage, MaskSet, convert, read_coco
from masklab.io.images import write_label_png
from masklab.io.voc import read_voc, write_voc
from masklab.types import Masks


def _set(names=("person", "car")):
    items = []
    yy, xx = np.mgrid[:24, :32]
    for i in range(2):
        a = (xx - 8 - i) ** 2 + (yy - 8) ** 2 < 30
        b = np.zeros((24, 32), bool)
        b[14:22, 18:30] = True
        c = np.zeros((24, 32), bool)
        c[2:6, 24:30] = True
        items.append(LabeledImage(f"img{i}.png", Masks(np.stack([a, b, c]),
                                                        labels=np.array([1, 2, 1])), i + 1))
    return MaskSet([{"id": 1, "name": names[0]}, {"id": 2, "name": names[1]}], items)


def test_voc_as_the_dataset_lays_it_out(tmp_path):
    root = tmp_path / "VOC2012"
    cls = np.zeros((10, 12), np.uint8)
    obj = np.zeros((10, 12), np.uint8)
    cls[1:5, 1:5], obj[1:5, 1:5] = 15, 1  # a person
    cls[6:9, 2:10], obj[6:9, 2:10] = 7, 2  # a car
    cls[0, :], obj[0, :] = 255, 255  # the void border
    cls[5, 1:5], obj[5, 1:5] = 255, 255
    write_label_png(root / "SegmentationClass" / "2007_000001.png", cls)
    write_label_png(root / "SegmentationObject" / "2007_000001.png", obj)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000001\n")
    ms = read_voc(tmp_path, split="val")  # the folder holding VOC2012
    assert len(ms.categories) == 20 and ms.categories[14] == {"id": 15, "name": "person"}
    m = ms.items[0].masks
    assert m.labels.tolist() == [15, 7] and m.area.tolist() == [16, 24]
    assert not m.to_dense()[:, 0].any()  # void is nobody's


def test_voc_round_trip_and_labelmap(tmp_path):
    ms = _set()
    write_voc(ms, tmp_path / "voc")
    assert not (tmp_path / "voc" / "labelmap.txt").exists()  # VOC's own classes
    back = read_voc(tmp_path / "voc")
    by_name = {c["id"]: c["name"] for c in back.categories}
    for a, b in zip(ms.items, back.items, strict=True):
        np.testing.assert_array_equal(a.masks.to_dense(), b.masks.to_dense())
        assert [by_name[int(c)] for c in b.masks.labels] == ["person", "car", "person"]
    write_voc(_set(("cat", "hydrant")), tmp_path / "v2")  # not VOC's: a labelmap
    assert (tmp_path / "v2" / "labelmap.txt").read_text().splitlines()[1:4] == [
        "background:0,0,0::", "cat:128,0,0::", "hydrant:0,128,0::"]
    assert [c["name"] for c in read_voc(tmp_path / "v2").categories] == ["cat", "hydrant"]
    convert(tmp_path / "voc", tmp_path / "a.json")  # guessed
    assert sum(len(i.masks) for i in read_coco(tmp_path / "a.json").items) == 6


def test_cityscapes_instances_and_polygons(tmp_path):
    city = tmp_path / "cs" / "gtFine" / "val" / "aachen"
    ids = np.zeros((10, 12), np.int64)
    ids[:, :] = 7  # road
    ids[0:3, :] = 23  # sky
    ids[4:8, 1:4] = 26000  # car 0
    ids[4:8, 6:9] = 26001  # car 1
    ids[9, 10:12] = 24  # a person region without instance
    ids[9, 0:2] = 0  # unlabeled
    write_label_png(city / "aachen_000000_000019_gtFine_instanceIds.png", ids.astype(np.uint16),
                    palette=False)
    ms = read_cityscapes(tmp_path / "cs", split="val")
    item = ms.items[0]
    assert item.file_name == "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"
    assert sorted(item.masks.labels.tolist()) == [7, 23, 24, 26, 26]
    assert {c["name"] for c in ms.categories} == {"road", "sky", "person", "car"}
    poly = {"imgHeight": 10, "imgWidth": 12, "objects": [
        {"label": "road", "polygon": [[0, 0], [11, 0], [11, 9], [0, 9]]},
        {"label": "cargroup", "polygon": [[1, 4], [3, 4], [3, 7], [1, 7]]}]}
    (city / "aachen_000000_000019_gtFine_polygons.json").write_text(json.dumps(poly))
    pm = read_cityscapes(tmp_path / "cs", source="polygons").items[0].masks
    assert pm.labels.tolist() == [7, 26]
    assert pm.area.tolist() == [120 - 12, 12]  # outline included; the car over the road


def test_cityscapes_round_trip(tmp_path):
    ms = _set(("person", "hydrant"))  # hydrant: not Cityscapes' (id 34, with instances)
    write_cityscapes(ms, tmp_path / "cs", split="train")
    back = read_cityscapes(tmp_path / "cs")
    names = {c["id"]: c["name"] for c in back.categories}
    assert names == {24: "person", 34: "hydrant"}
    for a, b in zip(ms.items, back.items, strict=True):
        order = np.argsort([m.argmax() for m in b.masks.to_dense()])
        want = sorted(range(3), key=lambda k: a.masks.to_dense()[k].argmax())
        np.testing.assert_array_equal(b.masks.to_dense()[order], a.masks.to_dense()[want])
    pm = read_cityscapes(tmp_path / "cs", source="polygons").items[0].masks
    assert sorted(pm.labels.tolist()) == [24, 24, 34]


def test_errors(tmp_path):
    with pytest.raises(InputError, match="no SegmentationClass"):
        read_voc(tmp_path)
    with pytest.raises(InputError, match="no \\*_gtFine_instanceIds.png"):
        read_cityscapes(tmp_path)
    f = tmp_path / "cs" / "gtFine" / "x" / "c" / "c_0_0_gtFine_instanceIds.png"
    write_label_png(f, np.full((2, 2), 99, np.uint8), palette=False)
    with pytest.raises(InputError, match="label id 99 is not a Cityscapes label"):
        read_cityscapes(tmp_path / "cs")
