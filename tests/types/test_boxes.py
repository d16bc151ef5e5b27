import numpy as np
import pytest
import torch
from torchvision.ops import box_iou, generalized_box_iou

from masklab import Boxes


def test_conversions_hand_values():
    b = Boxes.from_xywh([[10, 20, 30, 40]])
    np.testing.assert_array_equal(b.xyxy, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(b.cxcywh, [[25, 40, 30, 40]])
    np.testing.assert_array_equal(Boxes.from_cxcywh([[25, 40, 30, 40]]).xyxy, [[10, 20, 40, 60]])
    np.testing.assert_array_equal(b.xywh, [[10, 20, 30, 40]])
    assert b.area.tolist() == [1200]


def test_iou_and_giou_hand_values():
    a = Boxes([[0, 0, 2, 2]])
    b = Boxes([[1, 1, 3, 3], [2, 2, 4, 4], [5, 5, 6, 6]])
    # overlap 1, union 7; touching corners: 0; far apart: 0
    np.testing.assert_allclose(a.iou(b), [[1 / 7, 0, 0]])
    # GIoU = IoU - (hull - union) / hull: hull 9 -> 1/7 - 2/9; hull 16, union 8 -> -0.5;
    # hull 36, union 5 -> -31/36
    np.testing.assert_allclose(a.giou(b), [[1 / 7 - 2 / 9, -0.5, -31 / 36]])


def test_iou_giou_match_torchvision(rng):
    xy = rng.uniform(0, 100, (20, 2))
    wh = rng.uniform(0, 40, (20, 2))
    a = Boxes(np.concatenate([xy, xy + wh], 1))
    xy2 = rng.uniform(0, 100, (15, 2))
    b = Boxes(np.concatenate([xy2, xy2 + rng.uniform(1, 40, (15, 2))], 1))
    ta, tb = torch.from_numpy(a.xyxy), torch.from_numpy(b.xyxy)
    np.testing.assert_allclose(a.iou(b), box_iou(ta, tb).numpy(), atol=1e-12)
    np.testing.assert_allclose(a.giou(b), generalized_box_iou(ta, tb).numpy(), atol=1e-12)


def test_nms_class_aware_and_agnostic():
    b = Boxes([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]],
              scores=[0.9, 0.8, 0.7, 0.6], labels=[1, 1, 2, 1])
    assert b.nms(0.5).scores.tolist() == [0.9, 0.7, 0.6]
    assert b.nms(0.5, class_aware=False).scores.tolist() == [0.9, 0.6]


def test_clip_scale_index_cat():
    b = Boxes([[-5, 2, 20, 30]], labels=[3])
    assert b.clip(25, 15).xyxy.tolist() == [[0, 2, 15, 25]]
    assert b.scale(2, 0.5).xyxy.tolist() == [[-10, 1, 40, 15]]
    c = Boxes.cat([b, Boxes([[0, 0, 1, 1]], labels=[4])])
    assert len(c) == 2 and c.labels.tolist() == [3, 4]
    assert len(Boxes(np.zeros((0, 4)))) == 0
    with pytest.raises(ValueError, match="shape"):
        Boxes([[1, 2, 3]])
    with pytest.raises(ValueError, match="NaN"):
        Boxes([[0, 0, np.nan, 1]])
