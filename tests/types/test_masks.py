import cv2
import numpy as np
import pytest
from pycocotools import mask as pm

from masklab import Boxes, Masks


def _blobs(rng, n=5, h=64, w=80):
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        c = (int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)))
        axes = (int(rng.integers(2, 20)), int(rng.integers(2, 15)))
        cv2.ellipse(out[i], c, axes, int(rng.integers(0, 180)), 0, 360, 1, -1)
    return out.astype(bool)


def test_dense_rle_round_trip_and_metadata(rng):
    d = rng.random((4, 21, 33)) < 0.4
    m = Masks(d, scores=[0.1, 0.9, 0.5, 0.3], labels=[1, 2, 1, 3], class_names=["bg", "a", "b"])
    back = Masks.from_rle(m.to_rle(), labels=m.labels)
    np.testing.assert_array_equal(back.to_dense(), d)
    np.testing.assert_array_equal(back.area, d.sum(axis=(1, 2)))
    assert m.names == ["a", "b", "a", "3"]
    # uncompressed counts and bytes counts are accepted too
    unc = Masks.from_rle(m.to_rle(compressed=False))
    np.testing.assert_array_equal(unc.to_dense(), d)
    byt = Masks.from_rle([{"size": r["size"], "counts": r["counts"].encode()}
                          for r in m.to_rle()])
    assert byt.to_rle() == m.to_rle()


def test_zero_instances_and_errors():
    empty = Masks(np.zeros((0, 5, 6), bool))
    assert len(empty) == 0 and empty.size == (5, 6)
    assert empty.to_rle() == [] and empty.area.shape == (0,)
    assert empty.boxes.xyxy.shape == (0, 4)
    assert Masks.from_rle([], size=(5, 6)).size == (5, 6)
    assert empty.iou(Masks(np.ones((2, 5, 6), bool))).shape == (0, 2)
    with pytest.raises(ValueError, match="size"):
        Masks.from_rle([])
    with pytest.raises(ValueError, match="scores"):
        Masks(np.zeros((2, 3, 3)), scores=[1.0])
    with pytest.raises(ValueError, match="sum"):
        Masks.from_rle([{"size": [2, 2], "counts": [1, 1]}])


def test_boxes_hand_values_and_pycocotools(rng):
    d = np.zeros((3, 10, 12), bool)
    d[0, 2:5, 3:7] = True  # rows 2..4, cols 3..6
    d[1, 9, 11] = True
    np.testing.assert_array_equal(Masks(d).boxes.xyxy, [[3, 2, 7, 5], [11, 9, 12, 10],
                                                         [0, 0, 0, 0]])
    blobs = _blobs(rng, 8)
    m = Masks(blobs)
    ref = pm.toBbox(pm.encode(np.asfortranarray(blobs.transpose(1, 2, 0).astype(np.uint8))))
    np.testing.assert_array_equal(m.boxes.xywh, ref)
    np.testing.assert_array_equal(Masks.from_rle(m.to_rle()).boxes.xywh, ref)


def test_iou_matches_pycocotools_with_crowd(rng):
    a, b = _blobs(rng, 6), _blobs(rng, 4)
    crowd = [0, 1, 0, 1]
    ours = Masks(a).iou(Masks(b), crowd=np.array(crowd, bool))
    enc = lambda x: pm.encode(np.asfortranarray(x.transpose(1, 2, 0).astype(np.uint8)))  # noqa: E731
    ref = pm.iou(enc(a), enc(b), crowd)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_iou_hand_case():
    a = np.zeros((1, 4, 4), bool)
    b = np.zeros((2, 4, 4), bool)
    a[0, :2, :] = True  # 8 px
    b[0, 1:3, :] = True  # 8 px, 4 shared
    np.testing.assert_allclose(Masks(a).iou(Masks(b)), [[4 / 12, 0.0]])


def test_polygons_round_trip_exactly(rng):
    blobs = _blobs(rng, 20)
    m = Masks(blobs)
    back = Masks.from_polygons(m.to_polygons(), *m.size)
    np.testing.assert_array_equal(back.to_dense(), blobs)
    # a polygon given as (K, 2) points and as a flat list rasterise the same, as COCO does
    square = [[2, 2], [6, 2], [6, 5], [2, 5]]
    a = Masks.from_polygons([square], 8, 8)
    b = Masks.from_polygons([[[2, 2, 6, 2, 6, 5, 2, 5]]], 8, 8)
    expect = np.zeros((8, 8), bool)
    expect[2:5, 2:6] = True
    np.testing.assert_array_equal(a.to_dense()[0], expect)
    assert a.to_rle() == b.to_rle()
    ref = pm.merge(pm.frPyObjects([[2, 2, 6, 2, 6, 5, 2, 5]], 8, 8))
    assert a.to_rle()[0]["counts"].encode() == ref["counts"]
    with pytest.raises(ValueError, match="at least|>= 3"):
        Masks.from_polygons([[[1, 2, 3, 4]]], 8, 8)


def test_single_pixel_polygon():
    d = np.zeros((1, 6, 6), bool)
    d[0, 3, 2] = True
    back = Masks.from_polygons(Masks(d).to_polygons(), 6, 6)
    np.testing.assert_array_equal(back.to_dense(), d)


def test_indexing_cat_and_lazy_rle(rng):
    d = rng.random((5, 9, 9)) < 0.5
    m = Masks(d, scores=np.arange(5) / 10, track_ids=[10, 11, 12, 13, 14])
    sub = m[m.scores > 0.25]
    assert sub.track_ids.tolist() == [13, 14]
    assert m[-1].track_ids.tolist() == [14]
    assert m[1:3].scores.tolist() == [0.1, 0.2]
    r = Masks.from_rle(m.to_rle(), track_ids=m.track_ids)
    both = Masks.cat([r[[0, 1]], r[[4]]])
    assert both._dense is None  # stays RLE-only
    np.testing.assert_array_equal(both.to_dense(), d[[0, 1, 4]])
    mixed = Masks.cat([m[[0]], r[[2]]])
    np.testing.assert_array_equal(mixed.to_dense(), d[[0, 2]])
    assert mixed.track_ids.tolist() == [10, 12] and mixed.scores is None
    with pytest.raises(IndexError):
        m[5]


def test_nms_drops_overlaps_by_score():
    d = np.zeros((3, 10, 10), bool)
    d[0, :5, :5] = True
    d[1, :5, :4] = True  # IoU with 0 = 20/25 = 0.8
    d[2, 5:, 5:] = True
    kept = Masks(d, scores=[0.5, 0.9, 0.7]).nms(0.5)
    assert kept.scores.tolist() == [0.9, 0.7]
    assert len(Masks(d, scores=[0.5, 0.9, 0.7]).nms(0.85)) == 3


def test_resize_crop_pad():
    d = np.zeros((1, 4, 6), bool)
    d[0, 1:3, 2:4] = True
    m = Masks(d)
    up = m.resize(8, 12, mode="nearest").to_dense()[0]
    assert up.sum() == 16 and up[2:6, 4:8].all()
    assert m.resize(8, 12).to_dense()[0].sum() in range(12, 21)
    np.testing.assert_array_equal(m.crop(2, 1, 4, 3).to_dense()[0], np.ones((2, 2), bool))
    p = m.pad(1, 2, 3, 4)
    assert p.size == (7, 13) and p.to_dense()[0, 2:4, 5:7].all() and p.area[0] == 4


def test_from_label_map_and_back():
    lm = np.array([[0, 3, 3], [5, 5, 0]])
    m = Masks.from_label_map(lm)
    assert m.track_ids.tolist() == [3, 5]
    np.testing.assert_array_equal(m.to_label_map(), [[0, 1, 1], [2, 2, 0]])


def test_boxes_property_carries_metadata():
    d = np.zeros((1, 5, 5), bool)
    d[0, 1:3, 1:4] = True
    b = Masks(d, labels=[7], scores=[0.5]).boxes
    assert isinstance(b, Boxes) and b.labels.tolist() == [7] and b.scores.tolist() == [0.5]
