import numpy as np
import pytest

from masklab.metrics.semantic import (
    SemanticEvaluator,
    confusion_matrix,
    metrics_from_confusion,
    semantic_evaluate,
)


def test_hand_case():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 9]], np.uint8)
    cm = confusion_matrix(gt, pred, 3)
    # rows gt, columns pred, last column: prediction out of range (9)
    np.testing.assert_array_equal(cm, [[1, 1, 0, 0], [0, 2, 0, 1], [1, 0, 1, 0]])
    r = metrics_from_confusion(cm)
    # class 0: tp 1, gt 2, pred 2 -> IoU 1/3; class 1: tp 2, gt 3, pred 3 -> 2/4;
    # class 2: tp 1, gt 2, pred 1 -> 1/2
    np.testing.assert_allclose(r.iou, [1 / 3, 1 / 2, 1 / 2])
    np.testing.assert_allclose(r.dice, [2 / 4, 4 / 6, 2 / 3])
    np.testing.assert_allclose(r.acc, [1 / 2, 2 / 3, 1 / 2])
    assert r.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    assert r.pixel_acc == pytest.approx(4 / 7)
    assert r.fwiou == pytest.approx(2 / 7 * 1 / 3 + 3 / 7 * 1 / 2 + 2 / 7 * 1 / 2)


def test_absent_class_is_nan_and_excluded():
    gt = np.zeros((4, 4), np.uint8)
    r = semantic_evaluate([(gt, gt)], 3)
    assert r.iou[0] == 1 and np.isnan(r.iou[1]) and r.miou == 1.0


def test_reduce_zero_label_ade20k_rule():
    gt = np.array([[0, 1, 2, 255]], np.uint8)
    pred = np.array([[5, 0, 1, 0]], np.uint8)
    cm = confusion_matrix(gt, pred, 2, reduce_zero_label=True)
    np.testing.assert_array_equal(cm[:, :2], [[1, 0], [0, 1]])
    assert cm.sum() == 2


def test_matches_bincount_oracle_and_merge(rng):
    ev_all = SemanticEvaluator(19)
    parts = [SemanticEvaluator(19) for _ in range(3)]
    total = np.zeros((19, 20), np.int64)
    for i in range(9):
        gt = rng.integers(0, 21, (37, 53)).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.1] = 255
        pred = rng.integers(0, 20, (37, 53)).astype(np.int64)
        ev_all.update(gt, pred)
        parts[i % 3].update(gt, pred)
        valid = (gt != 255) & (gt < 19)
        p = np.where(pred[valid] < 19, pred[valid], 19)
        total += np.bincount(gt[valid].astype(np.int64) * 20 + p,
                             minlength=19 * 20).reshape(19, 20)
    np.testing.assert_array_equal(ev_all.confusion, total)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_array_equal(merged.confusion, total)
    assert merged.compute().miou == ev_all.compute().miou


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2), int), np.zeros((2, 3), int), 2)
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2)), 2)
