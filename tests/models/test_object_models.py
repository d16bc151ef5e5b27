import json

import numpy as np
import pytest
import torch

from masklab.io.coco import load_results
from masklab.models import list_models
from masklab.models.objects import (
    Detections,
    load_object_checkpoint,
    load_object_model,
    save_object_checkpoint,
)
from masklab.models.universal import build_universal

SMALL = {"min_size": 96, "max_size": 128}
# transformers' universal models are tested in test_universal_models.py
NAMES = [m.name for m in list_models() if m.task in ("instances", "boxes", "keypoints")
         and m.builder is not build_universal]


def _image(h=90, w=120, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3)).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_every_object_model_builds_and_predicts(name, tmp_path):
    torch.manual_seed(0)
    m = load_object_model(name, weights=None, config=SMALL)
    dets = m.predict([_image(), _image(70, 50, 1)], score_threshold=0.0, max_detections=7)
    assert len(dets) == 2
    for d, (h, w) in zip(dets, [(90, 120), (70, 50)], strict=True):
        assert isinstance(d, Detections) and len(d) <= 7
        assert np.all(np.diff(d.boxes.scores) <= 0)  # best first
        assert (d.boxes.xyxy[:, 2] <= w + 1e-3).all() and (d.boxes.xyxy[:, 3] <= h + 1e-3).all()
        if m.task == "instances":
            assert d.masks is not None and d.masks.size == (h, w)
        if m.task == "keypoints":
            assert d.keypoints is not None and d.keypoints.data.shape[1:] == (17, 3)
        results = d.to_coco_results(image_id=3)
        (tmp_path / "r.json").write_text(json.dumps(results))
        iou_type = {"instances": "segm", "boxes": "bbox", "keypoints": "keypoints"}[m.task]
        if results:
            assert load_results(tmp_path / "r.json", iou_type=iou_type) == results


def test_plain_state_dict_with_num_classes_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = load_object_model("fasterrcnn_resnet50_fpn", weights=None, num_classes=4,
                          class_names=["bg", "a", "b", "c"], config=SMALL)
    torch.save(m.net.state_dict(), tmp_path / "plain.pth")
    again = load_object_model("fasterrcnn_resnet50_fpn", weights=tmp_path / "plain.pth",
                              num_classes=4, class_names=["bg", "a", "b", "c"], config=SMALL)
    img = _image()
    a = m.predict([img], score_threshold=0.0)[0]
    b = again.predict([img], score_threshold=0.0)[0]
    np.testing.assert_allclose(a.boxes.xyxy, b.boxes.xyxy, atol=1e-4)
    save_object_checkpoint(tmp_path / "ck", m)
    c = load_object_checkpoint(tmp_path / "ck").predict([img], score_threshold=0.0)[0]
    np.testing.assert_allclose(a.boxes.scores, c.boxes.scores, atol=1e-5)
    assert c.boxes.class_names == ["bg", "a", "b", "c"]


def test_filters_classes_and_threshold():
    torch.manual_seed(0)
    m = load_object_model("retinanet_resnet50_fpn", weights=None, config=SMALL)
    d = m.predict([_image()], score_threshold=0.0, classes=[1, 3], max_detections=50)[0]
    assert set(d.boxes.labels.tolist()) <= {1, 3}
    none = m.predict([_image()], score_threshold=1.01)[0]
    assert len(none) == 0 and none.boxes.xyxy.shape == (0, 4)
