import numpy as np
import pytest
import torch

from masklab.interactive.everything import (
    point_grid,
    remove_small_regions,
    segment_everything,
    stability_score,
)
from masklab.metrics.interactive import iou


def regions_image():
    """Four flat-coloured quadrants with a disk in one: five distinct regions."""
    img = np.zeros((80, 100, 3), np.uint8)
    img[:40, :50] = (220, 40, 40)
    img[:40, 50:] = (40, 200, 40)
    img[40:, :50] = (40, 40, 220)
    img[40:, 50:] = (230, 230, 60)
    yy, xx = np.mgrid[:80, :100]
    disk = (xx - 75) ** 2 + (yy - 60) ** 2 <= 12 ** 2
    img[disk] = (20, 20, 20)
    rng = np.random.default_rng(0)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    quads = [np.zeros((80, 100), bool) for _ in range(4)]
    quads[0][:40, :50] = quads[1][:40, 50:] = quads[2][40:, :50] = quads[3][40:, 50:] = True
    quads[3] &= ~disk
    return img, [*quads, disk]


@pytest.mark.parametrize("mode", ["slic", "felzenszwalb"])
def test_classical_everything_covers_distinct_regions(mode):
    img, regions = regions_image()
    m = segment_everything(img, mode, min_region_area=30)
    dense = m.to_dense()
    for r in regions:  # each true region is matched by one predicted region
        assert max(iou(r, d) for d in dense) >= 0.9
    assert dense.sum(0).max() == 1  # a partition: no pixel in two regions


def test_grid_stability_and_small_regions():
    g = point_grid(4)
    assert g.shape == (16, 2) and g.min() == 0.125 and g.max() == 0.875
    logits = torch.full((1, 10, 10), -3.0)
    logits[0, :, :5] = 3.0
    logits[0, :, 5] = 0.5  # between -1 and +1: counted in the union only
    assert stability_score(logits, 0.0, 1.0).item() == pytest.approx(50 / 60)
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[8:10, 8:10] = False  # a 4-pixel hole
    m[0, 19] = True  # a 1-pixel island
    out = remove_small_regions(m, 5)
    assert out[8:10, 8:10].all() and not out[0, 19] and out[2:18, 2:18].all()


def test_sam_everything_with_a_tiny_model(tmp_path):
    pytest.importorskip("transformers")
    from tests.interactive.test_sam import _tiny_sam

    _tiny_sam(tmp_path / "sam")
    img, _ = regions_image()
    m = segment_everything(img, str(tmp_path / "sam"), points_per_side=4,
                           pred_iou_thresh=-1.0, stability_score_thresh=0.0,
                           box_nms_thresh=0.7, quiet=True)
    assert m.size == (80, 100) and len(m) >= 1
    assert np.all(np.diff(m.scores) <= 0)
    b = torch.as_tensor(m.boxes.xyxy, dtype=torch.float32)
    from torchvision.ops import box_iou

    off = box_iou(b, b) - torch.eye(len(b))
    assert (off <= 0.7 + 1e-6).all()  # NMS left no overlapping duplicates
    crops = segment_everything(img, str(tmp_path / "sam"), points_per_side=4, crop_n_layers=1,
                               pred_iou_thresh=-1.0, stability_score_thresh=0.0, quiet=True)
    assert crops.size == (80, 100)
    with pytest.raises(ValueError, match="cannot segment everything"):
        segment_everything(img, "grabcut")
