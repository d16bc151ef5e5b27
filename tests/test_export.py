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
