import numpy as np
import pytest
import torch

from masklab.nn.centerness import centerness


def test_hand_values():
    box = [[0, 0, 10, 20]]
    assert centerness([[5, 10]], box)[0] == 1.0
    # l=2, r=8, t=5, b=15: sqrt(2/8 * 5/15) = sqrt(1/12)
    assert centerness([[2, 5]], box)[0] == pytest.approx(np.sqrt(1 / 12))
    assert centerness([[0, 10]], box)[0] == 0.0  # on the border
    assert centerness([[-1, 10]], box)[0] == 0.0  # outside


def test_equals_torchvision_fcos_targets():
    from torchvision.models.detection._utils import BoxLinearCoder

    rng = np.random.default_rng(0)
    xy0 = rng.uniform(0, 100, (50, 2))
    boxes = np.concatenate([xy0, xy0 + rng.uniform(5, 60, (50, 2))], 1)
    pts = boxes[:, :2] + rng.uniform(0.05, 0.95, (50, 2)) * (boxes[:, 2:] - boxes[:, :2])
    size = 8.0  # FCOS anchors: a square of the level's stride around each location
    anchors = np.concatenate([pts - size / 2, pts + size / 2], 1)
    coder = BoxLinearCoder(normalize_by_size=True)
    t = coder.encode(torch.from_numpy(anchors), torch.from_numpy(boxes))
    lr, tb = t[:, [0, 2]], t[:, [1, 3]]
    ref = torch.sqrt((lr.min(-1)[0] / lr.max(-1)[0]) * (tb.min(-1)[0] / tb.max(-1)[0]))
    np.testing.assert_allclose(centerness(pts, boxes), ref.numpy(), rtol=1e-12)
