import json

import numpy as np
import torch

from masklab.data.synthetic import CORNER_NAMES, write_keypoints_coco
from masklab.models.objects import load_object_model
from masklab.tasks.instances_train import CocoTrainDataset, flip_permutation
from masklab.types.keypoints import COCO_KEYPOINT_NAMES
from tests.test_cli import run


def test_flip_permutation_swaps_left_and_right_twins():
    perm = flip_permutation(list(COCO_KEYPOINT_NAMES))
    names = [COCO_KEYPOINT_NAMES[i] for i in perm]
    assert names[:5] == ["nose", "right_eye", "left_eye", "right_ear", "left_ear"]
    assert flip_permutation(list(CORNER_NAMES)) == [1, 0, 3, 2]
    assert sorted(perm) == list(range(17))


def test_flipped_sample_keeps_keypoints_on_the_corners(tmp_path):
    d = write_keypoints_coco(tmp_path / "kp", 2, 1, size=64)
    plain = CocoTrainDataset(d / "train.json", d / "images", with_masks=False,
                             with_keypoints=True)
    flipped = CocoTrainDataset(d / "train.json", d / "images", with_masks=False,
                               with_keypoints=True, flip=True)
    x, t = plain[0]
    for seed in range(20):  # find a draw that flips
        torch.manual_seed(seed)
        xf, tf = flipped[0]
        if not torch.equal(xf, x):
            break
    assert torch.equal(xf, x.flip(-1))
    kp, kpf = t["keypoints"], tf["keypoints"]
    # the flipped top_left is the mirror of the original top_right, and so on
    assert torch.allclose(kpf[:, 0, 0], 64 - kp[:, 1, 0]) and torch.equal(kpf[:, 0, 1],
                                                                           kp[:, 1, 1])
    assert torch.allclose(kpf[:, 3, 0], 64 - kp[:, 2, 0])
    b = tf["boxes"]
    assert torch.allclose(b[:, 0], kpf[:, 0, 0]) and torch.allclose(b[:, 2], kpf[:, 1, 0])


def test_train_keypoints_cli_then_segment(tmp_path):
    d = write_keypoints_coco(tmp_path / "kp", 8, 2, size=64)
    out = run("-q", "train", "keypoints", "--data", d / "train.json", "--images", d / "images",
              "--val-data", d / "val.json", "--model", "keypointrcnn_resnet18_fpn",
              "--model-arg", "min_size=64", "--model-arg", "max_size=64", "--model-arg",
              "box_score_thresh=0", "--no-pretrained",
              "--epochs", 1, "--batch-size", 4, "--optimizer", "adamw", "--lr", "1e-4",
              "--workers", 0, "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    assert "best AP" in out.stdout
    m = load_object_model(tmp_path / "run" / "best")
    assert m.task == "keypoints" and m.keypoint_names == list(CORNER_NAMES)
    assert m.class_names == ["__background__", "square"]
    seg = run("-q", "segment", "keypoints", d / "images" / "val_00000.png", "--model",
              tmp_path / "run" / "best", "--score-threshold", 0, "--out", tmp_path / "pred")
    assert seg.returncode == 0, seg.stderr
    res = json.loads((tmp_path / "pred" / "results.json").read_text())
    assert res and all(len(r["keypoints"]) == 12 for r in res)
    assert np.isfinite(np.array([r["keypoints"] for r in res])).all()
    wrong = run("train", "instances", "--data", d / "train.json", "--images", d / "images",
                "--model", "keypointrcnn_resnet18_fpn", "--out", tmp_path / "r2")
    assert wrong.returncode == 2 and "train keypoints" in wrong.stderr
