import numpy as np
import pytest

from masklab import Masks
from masklab.metrics.boundary import boundary_band, boundary_iou, boundary_iou_matrix
from masklab.metrics.interactive import InteractiveEvaluator, next_click, noc, simulate
from masklab.metrics.matting import (
    MattingEvaluator,
    _gauss_filter,
    connectivity_error,
    gradient_error,
    mse,
    sad,
)


def _square(h=40, w=40, y0=10, y1=31, x0=10, x1=31):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_first_click_is_the_centre_of_the_object():
    gt = _square()
    x, y, positive = next_click(gt, np.zeros_like(gt))
    assert positive and (x, y) == (20.0, 20.0)


def test_negative_click_on_the_deeper_false_positive():
    gt = _square(y0=5, y1=10, x0=5, x1=10)  # small missed object
    pred = _square(y0=20, y1=39, x0=20, x1=39)  # large false positive
    x, y, positive = next_click(gt, pred)
    assert not positive and 20 <= x < 39 and 20 <= y < 39


def test_oracle_backend_needs_one_click_and_curve_is_flat():
    gt = _square()
    ev = InteractiveEvaluator()
    ious = ev.evaluate(lambda clicks: gt, gt)
    assert ious.tolist() == [1.0] * 20
    r = ev.compute()
    assert r.noc == {0.85: 1.0, 0.9: 1.0} and r.nof == {0.85: 0, 0.9: 0}


def test_disk_backend_needs_several_clicks():
    gt = np.zeros((60, 60), bool)
    gt[10:50, 5:25] = True
    gt[10:50, 35:55] = True  # two separate parts: one click cannot cover both

    def disks(clicks):
        yy, xx = np.mgrid[:60, :60]
        out = np.zeros((60, 60), bool)
        for x, y, pos in clicks:
            d = (yy - y) ** 2 + (xx - x) ** 2 <= 15 ** 2
            out = out | d if pos else out & ~d
        return out

    ious, clicks = simulate(disks, gt, max_clicks=20)
    assert clicks[0][2] and len(clicks) == 20
    assert noc(ious, 0.85) > 1 and ious[0] < ious.max()
    assert noc(np.zeros(20), 0.85) == 20


def test_interactive_merge():
    a, b = InteractiveEvaluator(), InteractiveEvaluator()
    a.update(np.linspace(0.5, 1, 20))
    b.update(np.full(20, 0.95))
    r = a.merge(b).compute()
    assert r.samples == 2 and r.noc[0.9] == pytest.approx((noc(np.linspace(0.5, 1, 20), 0.9)
                                                           + 1) / 2)


def test_sad_mse_hand_values():
    gt = np.zeros((4, 4))
    pred = np.zeros((4, 4))
    pred[0, :] = 0.5
    trimap = np.full((4, 4), 128)
    trimap[0, :2] = 255
    assert sad(pred, gt, trimap) == pytest.approx(1.0 / 1000)
    assert sad(pred, gt, region="all") == pytest.approx(2.0 / 1000)
    assert mse(pred, gt, trimap) == pytest.approx(2 * 0.25 / 14)


def test_gradient_error_of_a_ramp_is_analytic():
    fx, _ = _gauss_filter(1.4)
    half = fx.shape[0] // 2
    # min-max normalised ramp x / (w - 1): interior gradient is |sum fx[i, j] * j| / (w - 1)
    w = 60
    ramp = np.tile(np.arange(w, dtype=np.float64), (w, 1)) / (w - 1)
    expected = abs((fx * (np.arange(fx.shape[1]) - half)[None]).sum()) / (w - 1)
    flat = np.zeros_like(ramp)
    flat[0, 0] = 1  # min-max normalisation needs a range; one pixel far from the window
    trimap = np.zeros((w, w))
    trimap[20:40, 20:40] = 128
    got = gradient_error(ramp, flat, trimap)
    assert got == pytest.approx(400 * expected ** 2 / 1000, rel=1e-6)
    assert gradient_error(ramp, ramp, trimap) == 0.0


def test_connectivity_error_properties():
    gt = np.zeros((20, 20))
    gt[5:15, 5:15] = 1
    trimap = np.full((20, 20), 128)
    assert connectivity_error(gt, gt, trimap) == 0.0
    broken = gt.copy()
    broken[5:15, 10] = 0  # cut the object in two
    # the 10 cut pixels: ground truth phi 0, prediction phi 1. The smaller half is cut off
    # from the largest component in both (omega is built from the intersection): no error
    assert connectivity_error(broken, gt, trimap) == pytest.approx(10 / 1000)
    ev = MattingEvaluator()
    row = ev.update("a", broken, gt, trimap)
    assert set(row) == {"SAD", "MSE", "Grad", "Conn"} and ev.compute().mean["SAD"] == row["SAD"]


def test_boundary_iou_hand_case():
    m = _square(h=100, w=100, y0=20, y1=80, x0=20, x1=80)  # 60x60
    band = boundary_band(m, 0.02)  # d = round(0.02 * 141.4) = 3
    assert band.sum() == 60 * 60 - 54 * 54
    assert boundary_iou(m, m) == 1.0
    shifted = np.roll(m, 30, axis=1)
    assert 0 < boundary_iou(m, shifted) < 0.3
    mat = boundary_iou_matrix(Masks(m[None]), Masks(np.stack([m, shifted])))
    assert mat.shape == (1, 2) and mat[0, 0] == 1.0
    assert mat[0, 1] == pytest.approx(boundary_iou(m, shifted))
