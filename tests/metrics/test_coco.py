import contextlib
import copy
import io

import numpy as np
import pytest

from masklab.metrics import CocoEvaluator, CocoParams, coco_evaluate
from tests.metrics.coco_synth import make_set


def pycoco(gt, results, iou_type, params=None):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        cd = cg.loadRes(copy.deepcopy(results))
        ev = COCOeval(cg, cd, iou_type)
        if params is not None:
            ev.params.iouThrs = params.iou_thrs
            ev.params.maxDets = list(params.max_dets)
            ev.params.areaRng = [list(r) for r in params.area_rngs]
            ev.params.areaRngLbl = list(params.area_labels)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("matcher", ["numpy", "numba"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_matches_pycocotools_on_adversarial_sets(seed, iou_type, matcher, monkeypatch):
    from masklab.metrics import _coco_match

    # the matcher is chosen by the work; each is forced here in turn
    monkeypatch.setattr(_coco_match, "JIT_SECONDS", 1e9 if matcher == "numpy" else -1.0)
    gt, results = make_set(seed)
    ref = pycoco(gt, results, iou_type)
    ours = coco_evaluate(gt, results, iou_type)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.scores, ref.eval["scores"], rtol=0, atol=1e-12)
    assert ours.stats.min() >= -1 and 0 < ours.stats[0] < 1


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_matches_faster_coco_eval(iou_type):
    fce = pytest.importorskip("faster_coco_eval")
    gt, results = make_set(5, adversarial=False)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = fce.COCO(copy.deepcopy(gt))
        cd = cg.loadRes(copy.deepcopy(results))
        ev = fce.COCOeval_faster(cg, cd, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ours = coco_evaluate(gt, results, iou_type)
    np.testing.assert_allclose(ours.stats, ev.stats[:12], rtol=0, atol=1e-12)


def test_custom_thresholds_max_dets_and_area_ranges():
    gt, results = make_set(3)
    params = CocoParams("bbox", iou_thrs=np.array([0.3, 0.5, 0.75]), max_dets=(5, 20, 100),
                        area_rngs=((0, 1e10), (0, 100), (100, 2000), (2000, 1e10)))
    ref = pycoco(gt, results, "bbox", params)
    ours = coco_evaluate(gt, results, "bbox", params)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-12)


def test_merge_equals_one_accumulator():
    gt, results = make_set(4)
    whole = coco_evaluate(gt, results, "segm")
    images = gt["images"]
    parts = []
    for chunk in (images[::3], images[1::3], images[2::3]):
        ids = {im["id"] for im in chunk}
        ev = CocoEvaluator(gt["categories"], "segm")
        ev.update(chunk, [a for a in gt["annotations"] if a["image_id"] in ids],
                  [r for r in results if r["image_id"] in ids])
        parts.append(ev)
    merged = parts[0].merge(parts[1]).merge(parts[2]).compute()
    np.testing.assert_array_equal(merged.stats, whole.stats)
    np.testing.assert_array_equal(merged.precision, whole.precision)
    with pytest.raises(ValueError, match="already"):
        parts[0].update(images[:1], [], [])


def test_hand_case_two_objects():
    # two ground-truth boxes; one detection matches the first exactly, one misses
    gt = {"images": [{"id": 1, "height": 100, "width": 100, "file_name": "a"}],
          "categories": [{"id": 1, "name": "a"}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
               "iscrowd": 0},
              {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 10, 10], "area": 100,
               "iscrowd": 0}]}
    res = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
           {"image_id": 1, "category_id": 1, "bbox": [80, 80, 10, 10], "score": 0.8}]
    r = coco_evaluate(gt, res, "bbox")
    # recall reaches 0.5 at precision 1: 51 of 101 recall points are 1 -> AP = 51/101
    assert r.stats[0] == pytest.approx(51 / 101, abs=1e-12)
    assert r.stats[8] == pytest.approx(0.5)
    assert r.simple == {"precision@0.5": 0.5, "recall@0.5": 0.5, "f1@0.5": 0.5, "tp": 1,
                        "fp": 1, "num_gt": 2, "mAP@0.5": pytest.approx(51 / 101)}
    assert r.per_category()[1]["AP50"] == pytest.approx(51 / 101)


def test_keypoints_match_pycocotools():
    rng = np.random.default_rng(7)
    images, anns, results = [], [], []
    cats = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)],
             "skeleton": [[1, 2]]}]
    aid = 1
    for i in range(25):
        images.append({"id": i + 1, "height": 200, "width": 200, "file_name": f"{i}.png"})
        for _ in range(int(rng.integers(0, 4))):
            x0, y0 = rng.uniform(0, 120, 2)
            wh = rng.uniform(10, 80, 2)
            kp = np.stack([x0 + rng.uniform(0, wh[0], 17), y0 + rng.uniform(0, wh[1], 17),
                           rng.choice([0, 1, 2], 17, p=[0.3, 0.2, 0.5])], 1)
            if rng.random() < 0.15:
                kp[:, 2] = 0
            kp[kp[:, 2] == 0, :2] = 0
            nk = int((kp[:, 2] > 0).sum())
            anns.append({"id": aid, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                         "keypoints": kp.reshape(-1).tolist(), "num_keypoints": nk,
                         "bbox": [x0, y0, wh[0], wh[1]], "area": float(wh[0] * wh[1])})
            aid += 1
            for _ in range(int(rng.integers(0, 3))):
                det = kp.copy()
                det[:, :2] = np.stack([x0 + rng.uniform(0, wh[0], 17),
                                       y0 + rng.uniform(0, wh[1], 17)], 1) * 0.2 + \
                    kp[:, :2] * 0.8 + rng.normal(0, 2, (17, 2))
                det[:, 2] = 1
                results.append({"image_id": i + 1, "category_id": 1,
                                 "keypoints": det.reshape(-1).tolist(),
                                 "score": float(np.round(rng.random(), 1))})
    gt = {"images": images, "annotations": anns, "categories": cats}
    ref = pycoco(gt, results, "keypoints")
    ours = coco_evaluate(gt, results, "keypoints")
    assert len(ours.stats) == 10
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)


def test_results_for_unknown_images_are_rejected():
    from masklab.errors import InputError

    gt, results = make_set(0, n_images=3)
    bad = [*results, {**results[0], "image_id": 424242}]
    with pytest.raises(InputError, match="424242"):
        coco_evaluate(gt, bad, "bbox")


def test_no_detections_gives_zero_not_minus_one():
    gt, _ = make_set(0, n_images=5)
    r = coco_evaluate(gt, [], "bbox")
    assert r.stats[0] == 0.0


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_matches_pycocotools_on_a_larger_plain_set(iou_type):
    gt, results = make_set(11, n_images=150, adversarial=False, gt_per_image=8,
                           dt_per_image=20)
    ref = pycoco(gt, results, iou_type)
    ours = coco_evaluate(gt, results, iou_type)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.precision, ref.eval["precision"], rtol=0, atol=1e-12)


def _without_boxes_mixed(gt, results):
    """Results as real segm files write them (no ``bbox``, so areas come from the masks),
    every third detection as polygons and every third as uncompressed RLE; and the same
    detections as compressed RLE for pycocotools, whose ``loadRes`` takes only that."""
    from pycocotools import mask as coco_mask

    from masklab import Masks

    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    ours, ref = [], []
    for k, r in enumerate(results):
        h, w = sizes[r["image_id"]]
        seg = r["segmentation"]
        if k % 3 == 1:
            polys = Masks.from_rle([seg]).to_polygons()[0]
            if polys:
                seg = polys
                rle = coco_mask.merge(coco_mask.frPyObjects(polys, h, w))
                ref_seg = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            else:
                ref_seg = seg
        elif k % 3 == 2:
            seg = Masks.from_rle([seg]).to_rle(compressed=False)[0]
            ref_seg = r["segmentation"]
        else:
            ref_seg = seg
        base = {key: v for key, v in r.items() if key not in ("bbox", "segmentation")}
        ours.append({**base, "segmentation": seg})
        ref.append({**base, "segmentation": ref_seg})
    return ours, ref


def test_segm_results_with_many_rle_masks_match_pycocotools():
    """> 255 RLE detections without boxes crashed: pycocotools' mask.area overflows a uint8
    there (NumPy 2); cocoapi's own fakesegm results file has 734."""
    gt, results = make_set(11, n_images=120, dt_per_image=240, adversarial=False)
    assert len(results) >= 10_000
    ours, ref = _without_boxes_mixed(gt, results)
    expected = pycoco(gt, ref, "segm")
    got = coco_evaluate(gt, ours, "segm")
    np.testing.assert_allclose(got.stats, expected.stats, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.precision, expected.eval["precision"], rtol=0, atol=1e-12)
    assert 0 < got.stats[0] < 1


def test_masks_area_of_many_rle_masks():
    from masklab import Masks
    from masklab.rle import area

    rng = np.random.default_rng(3)
    dense = rng.random((1000, 12, 9)) < rng.random((1000, 1, 1))
    want = dense.reshape(1000, -1).sum(1)
    m = Masks.from_rle(Masks(dense).to_rle())
    np.testing.assert_array_equal(m.area, want)
    np.testing.assert_array_equal(area(Masks(dense).to_rle(compressed=False)), want)


def test_numpy_and_numba_matchers_agree_on_ties_crowds_and_area_ranges():
    """Random groups with quantised IoUs (many ties), crowd and ignored ground truths,
    objects in and out of every area range: the vectorised numpy matcher and the compiled
    one make the same decision for every (area, threshold, detection)."""
    from masklab.metrics import _coco_match, _coco_match_jit

    rng = np.random.default_rng(0)
    rngs = np.array([[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10]])
    thrs = np.linspace(.5, .95, 10)

    def starts(c):
        return np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64)

    matched = 0
    for _ in range(150):
        ng = int(rng.integers(1, 30))
        gd, gg = rng.integers(0, 8, ng), rng.integers(0, 12, ng)
        pairs = gd * gg
        q = rng.choice([4, 10, 100])
        ious = np.clip(np.round(rng.random(pairs.sum()) * q) / q, 0, 1)
        n_g, n_d = int(gg.sum()), int(gd.sum())
        areas = [10., 100., 1000., 5000., 20000.]
        crowd = rng.random(n_g) < 0.15
        args = (starts(gd), gd, starts(gg), gg, starts(pairs), ious, rng.choice(areas, n_g),
                crowd | (rng.random(n_g) < 0.2), crowd, np.arange(1, n_g + 1),
                rng.choice(areas, n_d), rngs, thrs)
        a = _coco_match.match_groups(*args, jit=False)
        b = _coco_match_jit.match_groups(*args)
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
        matched += int((a[0] > 0).sum())
        nd, npig = int(rng.integers(1, 50)), int(rng.integers(1, 60))
        # recalls as accumulate computes them (tp / npig): values a shifted search would round
        rc = np.minimum(np.cumsum(rng.random((10, nd)) < 0.6, axis=1) / npig, 1.0)
        pr, sc = rng.random((10, nd)), rng.random(nd)
        rec = np.linspace(.0, 1.00, 101)
        for x, y in zip(_coco_match.sample_precision(rc, pr, sc, rec),
                        _coco_match_jit.sample_precision(rc, pr, sc, rec), strict=True):
            assert (x == y).all()
    assert matched > 1000  # the comparison is not vacuous


def test_small_evaluation_does_not_import_numba(tmp_path):
    """The CLI on a small set stays clear of numba's half-second start-up."""
    import json
    import subprocess
    import sys

    gt, results = make_set(0)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    code = ("import sys; from masklab.cli import main; sys.argv = ['masklab', 'eval', 'coco', "
            f"{str(tmp_path / 'gt.json')!r}, {str(tmp_path / 'dt.json')!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('numba' in sys.modules, file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert "AP" in r.stdout and r.stderr.strip().splitlines()[-1] == "False", r.stderr
