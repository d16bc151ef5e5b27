import json

import numpy as np
import torch

from masklab.io.coco import load_results
from masklab.io.images import write_image
from masklab.models.objects import load_object_model
from tests.test_cli import run


def test_segment_instances_with_a_plain_state_dict(tmp_path):
    torch.manual_seed(0)
    m = load_object_model("maskrcnn_resnet50_fpn", weights=None, num_classes=3)
    torch.save(m.net.state_dict(), tmp_path / "w.pth")
    (tmp_path / "names.txt").write_text("__background__\ncat\ndog\n")
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image(tmp_path / "img" / f"{i}.jpg", rng.integers(0, 255, (60, 80, 3),
                                                                dtype=np.uint8))
    out = run("-q", "segment", "instances", tmp_path / "img", "--model",
              "maskrcnn_resnet50_fpn", "--weights", tmp_path / "w.pth", "--num-classes", 3,
              "--class-names", tmp_path / "names.txt", "--score-threshold", 0,
              "--max-detections", 5, "--out", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "out" / "images.json").read_text())
    assert [c["name"] for c in meta["categories"]] == ["cat", "dog"]
    assert [im["file_name"] for im in meta["images"]] == ["0.jpg", "1.jpg"]
    res = load_results(tmp_path / "out" / "results.json", iou_type="segm")
    assert all(r["category_id"] in (1, 2) for r in res) and len(res) <= 10
    assert (tmp_path / "out" / "0_overlay.png").is_file()
    wrong = run("segment", "boxes", tmp_path / "img", "--model", "maskrcnn_resnet50_fpn",
                "--weights", tmp_path / "w.pth", "--num-classes", 3, "--out", tmp_path / "o")
    assert wrong.returncode == 2 and "predicts instances, not boxes" in wrong.stderr
    bad = run("segment", "instances", tmp_path / "img", "--model", "maskrcnn_resnet50_fpn",
              "--weights", tmp_path / "w.pth", "--out", tmp_path / "o2")
    assert bad.returncode == 2 and "do not fit" in bad.stderr
