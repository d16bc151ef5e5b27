import json

import numpy as np
import pytest

from masklab.io.images import write_image, write_label_png
from tests.conftest import shared_path
from tests.test_cli import run


def test_eval_coco_json_table_and_plots(tmp_path):
    from tests.metrics.coco_synth import make_set
    from tests.metrics.test_coco import pycoco

    gt, results = make_set(2)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = run("eval", "coco", tmp_path / "gt.json", tmp_path / "res.json", "--iou-type",
              "segm", "--json", tmp_path / "o.json", "--plots", tmp_path / "plots")
    assert out.returncode == 0, out.stderr
    assert "AP50" in out.stdout and "precision@0.5" in out.stdout
    data = json.loads((tmp_path / "o.json").read_text())
    assert len(data["stats"]) == 12 and set(data["per_category"]) == {str(c["id"]) for c in
                                                                        gt["categories"]}
    np.testing.assert_allclose(data["stats"], pycoco(gt, results, "segm").stats, atol=1e-12)
    assert (tmp_path / "plots" / "pr_curves.png").stat().st_size > 1000


def test_eval_coco_segm_results_without_boxes(tmp_path):
    """cocoapi's fakesegm-style results: RLE masks and no bbox, more than 255 of them (the
    count past which pycocotools' mask.area overflows)."""
    from tests.metrics.coco_synth import make_set
    from tests.metrics.test_coco import pycoco

    gt, results = make_set(4, n_images=20, dt_per_image=30, adversarial=False)
    results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    assert len(results) > 255
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = run("eval", "coco", tmp_path / "gt.json", tmp_path / "res.json", "--iou-type",
              "segm", "--json", tmp_path / "o.json")
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "o.json").read_text())
    np.testing.assert_allclose(data["stats"], pycoco(gt, results, "segm").stats, atol=1e-12)


def test_eval_coco_bad_results_one_line(tmp_path):
    from tests.metrics.coco_synth import make_set

    gt, results = make_set(0, n_images=3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    del results[0]["score"]
    (tmp_path / "res.json").write_text(json.dumps(results))
    out = run("eval", "coco", tmp_path / "gt.json", tmp_path / "res.json", "--iou-type", "bbox")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "missing key 'score'" in out.stderr


def test_eval_semantic(tmp_path, rng):
    for i in range(3):
        gt = rng.integers(0, 4, (20, 30))
        pred = np.where(rng.random((20, 30)) < 0.8, gt, rng.integers(0, 4, (20, 30)))
        write_label_png(tmp_path / "gt" / f"{i}.png", gt)
        write_label_png(tmp_path / "pred" / f"{i}.png", pred)
    (tmp_path / "names.txt").write_text("a\nb\nc\nd\n")
    out = run("eval", "semantic", tmp_path / "gt", tmp_path / "pred", "--num-classes", 4,
              "--class-names", tmp_path / "names.txt", "--json", tmp_path / "s.json",
              "--plots", tmp_path / "plots")
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "s.json").read_text())
    assert 0.6 < data["mIoU"] < 0.95 and set(data["per_class"]) == {"a", "b", "c", "d"}
    assert (tmp_path / "plots" / "confusion.png").is_file()
    (tmp_path / "pred" / "2.png").unlink()
    bad = run("eval", "semantic", tmp_path / "gt", tmp_path / "pred", "--num-classes", 4)
    assert bad.returncode == 2 and "no prediction 2.png" in bad.stderr


def test_eval_panoptic_and_davis_fixtures(tmp_path):
    pan = shared_path("fixtures", "panoptic_dev")
    out = run("-q", "eval", "panoptic", "--gt-json", pan / "gt.json", "--gt-dir", pan / "gt",
              "--pred-json", pan / "pred.json", "--pred-dir", pan / "pred", "--json",
              tmp_path / "p.json")
    assert out.returncode == 0, out.stderr
    expected = json.loads((pan / "expected.json").read_text())
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["All"]["pq"] == pytest.approx(expected["All"]["pq"], abs=1e-12)
    dav = shared_path("fixtures", "davis_dev")
    out = run("-q", "eval", "davis", "--davis-root", dav / "DAVIS", "--results",
              dav / "results", "--json", tmp_path / "d.json")
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "d.json").read_text())
    want = json.loads((dav / "expected.json").read_text())
    assert got["J&F-Mean"] == pytest.approx(want["J&F-Mean"], abs=1e-12)


def test_eval_matting(tmp_path):
    gt = np.zeros((30, 30), np.uint8)
    gt[8:22, 8:22] = 255
    gt[8:22, 7] = 128
    pred = gt.copy()
    pred[8:22, 7] = 0
    trimap = np.zeros_like(gt)
    trimap[5:25, 5:25] = 128
    write_image(tmp_path / "gt" / "a.png", gt)
    write_image(tmp_path / "pred" / "a.png", pred)
    write_image(tmp_path / "tri" / "a.png", trimap)
    out = run("eval", "matting", tmp_path / "pred", tmp_path / "gt", "--trimaps",
              tmp_path / "tri", "--json", tmp_path / "m.json")
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["per_image"]["a"]["SAD"] == pytest.approx(14 * 128 / 255 / 1000)
