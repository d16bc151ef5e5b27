import numpy as np
import pytest
import torch

from masklab.export import check_parity, export_onnx
from masklab.models.objects import load_object_model

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"])
def test_onnx_export_matches_pytorch(name, tmp_path):
    torch.manual_seed(0)
    m = load_object_model(name, weights=None, num_classes=3,
                          config={"min_size": 128, "max_size": 160, "box_score_thresh": 0.0,
                                  "box_detections_per_img": 20})
    path = export_onnx(m, tmp_path / "m.onnx", height=96, width=128)
    image = np.random.default_rng(1).integers(0, 255, (90, 120, 3)).astype(np.uint8)
    p = check_parity(m, path, image)
    assert p.detections_torch > 0, "random weights should still give some detections"
    assert p.ok, p


def test_parity_matches_detections_as_sets_with_score_ties():
    from masklab.export import Parity, match_detections

    rng = np.random.default_rng(0)
    n = 8
    xy = rng.uniform(0, 500, (n, 2))
    ref = {"boxes": np.concatenate([xy, xy + rng.uniform(5, 100, (n, 2))], 1),
           "labels": np.array([1, 2, 1, 1, 2, 2, 1, 1]),
           "scores": np.array([0.9, 0.7, 0.7, 0.7, 0.5, 0.5, 0.2, 0.1]),
           "masks": rng.random((n, 1, 6, 7))}
    order = np.array([0, 3, 1, 2, 5, 4, 6, 7])  # tied scores come out in another order
    got = {k: v[order].copy() for k, v in ref.items()}
    got["boxes"] += rng.uniform(-0.004, 0.004, got["boxes"].shape)
    diffs = match_detections(ref, got)
    assert diffs["boxes"] <= 0.004 and diffs["scores"] == 0 and diffs["labels"] == 0
    assert diffs["masks"] == 0
    assert Parity(n, n, diffs).ok
    naive = np.abs(ref["boxes"] - got["boxes"]).max()
    assert naive > 10  # what an index-by-index comparison reported
    # a real difference still shows: one box moved by 3 px
    got["boxes"][2, 1] += 3
    diffs = match_detections(ref, got)
    assert 2.99 < diffs["boxes"] < 3.01 and not Parity(n, n, diffs).ok
    # different counts: no matching, not ok
    short = {k: v[:-1] for k, v in got.items()}
    assert match_detections(ref, short) == {} and not Parity(n, n - 1, {}).ok
