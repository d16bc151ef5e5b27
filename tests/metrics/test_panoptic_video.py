import json

import numpy as np
import pytest

from masklab.errors import InputError
from masklab.metrics.panoptic import PanopticEvaluator, panoptic_evaluate
from masklab.metrics.video import (
    DavisEvaluator,
    boundary_f,
    davis_evaluate,
    region_similarity,
    statistics,
)
from tests.conftest import shared_path

CATS = [{"id": 1, "name": "thing", "isthing": 1}, {"id": 2, "name": "stuff", "isthing": 0}]


def test_pq_shared_fixture_equals_panopticapi():
    root = shared_path("fixtures", "panoptic_dev")
    expected = json.loads((root / "expected.json").read_text())
    got = panoptic_evaluate(root / "gt.json", root / "gt", root / "pred.json", root / "pred",
                            quiet=True).to_dict()
    for part in ("All", "Things", "Stuff"):
        for k in ("pq", "sq", "rq"):
            assert got[part][k] == pytest.approx(expected[part][k], abs=1e-12)
        assert got[part]["n"] == expected[part]["n"]
    for c, row in expected["per_class"].items():
        for k in ("pq", "sq", "rq"):
            assert got["per_class"][c][k] == pytest.approx(row[k], abs=1e-12)


def test_pq_hand_case_with_void_and_crowd():
    gt = np.zeros((10, 10), np.int64)
    gt[:, :5] = 1  # thing, 50 px
    gt[:, 5:] = 2  # stuff, 50 px
    gt[0, :] = 0  # void row
    pred = np.zeros((10, 10), np.int64)
    pred[:, :4] = 7  # matches segment 1: inter 36, union 40 + 45 - 36 - 4 (void) = 45
    pred[:, 4:] = 8  # stuff, inter with 2: 45; union 60 + 45 - 45 - 6 = 54
    gt_segs = [{"id": 1, "category_id": 1, "area": 45}, {"id": 2, "category_id": 2, "area": 45}]
    pred_segs = [{"id": 7, "category_id": 1}, {"id": 8, "category_id": 2}]
    r = PanopticEvaluator(CATS).update(gt, gt_segs, pred, pred_segs).compute()
    assert r.per_class[1]["pq"] == pytest.approx(36 / 45)
    assert r.per_class[2]["sq"] == pytest.approx(45 / 54)
    assert r.all["rq"] == 1.0 and r.things["n"] == 1 and r.stuff["n"] == 1
    # a prediction lying mostly on a crowd region of its class is not a false positive
    gt_segs[0]["iscrowd"] = 1
    r = PanopticEvaluator(CATS).update(gt, gt_segs, pred, pred_segs).compute()
    assert r.per_class[1] == {"pq": 0.0, "sq": 0.0, "rq": 0.0}


def test_pq_rejects_inconsistent_prediction():
    ids = np.ones((4, 4), np.int64)
    with pytest.raises(InputError, match="in the PNG but not in the JSON"):
        PanopticEvaluator(CATS).update(ids, [{"id": 1, "category_id": 1, "area": 16}], ids * 3,
                                       [])
    with pytest.raises(InputError, match="in the JSON but not in the PNG"):
        PanopticEvaluator(CATS).update(ids, [{"id": 1, "category_id": 1, "area": 16}], ids,
                                       [{"id": 1, "category_id": 1},
                                        {"id": 5, "category_id": 1}])


def test_davis_shared_fixture_equals_official():
    root = shared_path("fixtures", "davis_dev")
    expected = json.loads((root / "expected.json").read_text())
    got = davis_evaluate(root / "DAVIS", root / "results", quiet=True).to_dict()
    for k in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        assert got[k] == pytest.approx(expected[k], abs=1e-12)
    for k, v in expected["J_per_object"].items():
        assert got["J_per_object"][k] == pytest.approx(v, abs=1e-12)
    for k, v in expected["F_per_object"].items():
        assert got["F_per_object"][k] == pytest.approx(v, abs=1e-12)


def test_j_and_f_hand_cases():
    a = np.zeros((1, 20, 20), bool)
    a[0, 5:15, 5:15] = True
    b = np.zeros_like(a)
    b[0, 5:15, 5:10] = True
    assert region_similarity(a, b)[0] == pytest.approx(0.5)
    assert region_similarity(~a & False, ~a & False)[0] == 1.0  # both empty
    assert boundary_f(a[0], a[0]) == 1.0
    assert boundary_f(a[0], np.zeros((20, 20), bool)) == 0.0
    far = np.zeros((200, 200), bool)
    far[10:20, 10:20] = True
    other = np.zeros_like(far)
    other[150:160, 150:160] = True
    assert boundary_f(far, other) == 0.0


def test_statistics_decay_and_recall():
    v = np.array([1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.0])
    mean, recall, decay = statistics(v)
    assert mean == pytest.approx(v.mean())
    assert recall == pytest.approx(4 / 8)
    # 8 frames: edges round(linspace(1, 8, 5)) - 1 = 0, 2, 4, 5, 7 (inclusive), so the first
    # quarter is frames 0..2 and the last frames 5..7
    assert decay == pytest.approx(np.mean(v[0:3]) - np.mean(v[5:8]))


def test_unsupervised_hungarian_matches_proposals():
    gt = np.zeros((3, 30, 30), np.uint8)
    gt[:, 2:10, 2:10] = 1
    gt[:, 15:25, 15:25] = 2
    res = np.zeros_like(gt)
    res[:, 15:25, 15:25] = 1  # proposals in swapped order
    res[:, 2:10, 2:10] = 2
    r = DavisEvaluator("unsupervised").update("s", gt, res).compute()
    assert r.global_["J-Mean"] == 1.0 and r.global_["F-Mean"] == 1.0
    semi = DavisEvaluator("semi-supervised").update("s", gt, res[1:-1]).compute()
    assert semi.global_["J-Mean"] == 0.0


def test_pq_and_davis_merge_equal_one_pass():
    root = shared_path("fixtures", "panoptic_dev")
    from masklab.io.panoptic import load_panoptic

    gt = load_panoptic(root / "gt.json", root / "gt")
    pred = load_panoptic(root / "pred.json", root / "pred", categories=gt.data["categories"])
    one, a, b = (PanopticEvaluator(gt.data["categories"]) for _ in range(3))
    for k, (image_id, ann) in enumerate(gt.annotation_by_image.items()):
        args = (gt.read_ids(image_id), ann["segments_info"], pred.read_rgb(image_id),
                pred.annotation_by_image[image_id]["segments_info"])
        one.update(*args)
        (a if k % 2 else b).update(*args)
    merged, single = a.merge(b).compute(), one.compute()
    for part in ("all", "things", "stuff"):
        assert getattr(merged, part) == pytest.approx(getattr(single, part), abs=1e-12)
    assert {c: (s.tp, s.fp, s.fn) for c, s in a.stats.items()} == \
        {c: (s.tp, s.fp, s.fn) for c, s in one.stats.items()}

    gt_ids = np.zeros((4, 20, 20), np.uint8)
    gt_ids[:, 5:15, 5:15] = 1
    res = np.roll(gt_ids, 2, axis=2)[1:-1]
    whole = DavisEvaluator().update("a", gt_ids, res).update("b", gt_ids, res[:, ::-1])
    x = DavisEvaluator().update("a", gt_ids, res)
    y = DavisEvaluator().update("b", gt_ids, res[:, ::-1])
    assert x.merge(y).compute().global_ == whole.compute().global_
