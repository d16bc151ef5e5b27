"""Semantic training on 2 CPU processes (torch.distributed, gloo, launched by
``masklab train semantic --nproc 2``) against the single-process run with the same global
batch: the same losses, the same weights, the same validation figures (merged confusion
matrices); rank 0 alone writes the checkpoint, which loads and predicts."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

from masklab.data.synthetic import write_shapes_dataset
from masklab.models.semantic import load_semantic_model
from masklab.tasks.semantic import TrainConfig, predict_semantic, train_semantic
from masklab.weights import load_state_dict

OPTS = dict(model="unet", model_config={"depth": 2, "width": 4, "norm": "group"},
            num_classes=4, batch_size=8, crop=None, scale=(1.0, 1.0), jitter=0.0, flip=False,
            epochs=2, max_steps=4, lr=1e-2, workers=0, quiet=True, tensorboard=False)


def _cli(cfg: dict) -> list[str]:
    return ["train", "semantic", "--data", cfg["data"], "--out", cfg["out"], "--model", "unet",
            "--model-arg", "depth=2", "--model-arg", "width=4", "--model-arg", "norm=group",
            "--num-classes", "4", "--batch-size", "8", "--crop", "none", "--scale", "1,1",
            "--jitter", "0", "--no-flip", "--epochs", "2", "--max-steps", "4", "--lr", "0.01",
            "--workers", "0", "--device", "cpu"]


def _log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", 24, 6, size=32, seed=3)
    torch.set_num_threads(1)
    one = train_semantic(TrainConfig(data=str(data), out=str(tmp_path / "one"), device="cpu",
                                     **OPTS))
    two_out = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "masklab.cli", "-q",
                        *_cli({"data": str(data), "out": str(two_out)}), "--nproc", "2"],
                       capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("best val mIoU") == 1  # rank 0 speaks
    log = _log(two_out / "log.csv")
    assert [int(row["epoch"]) for row in log] == [1, 2]
    for a, b in zip(one.history, log, strict=True):
        assert float(b["loss"]) == pytest.approx(a["loss"], rel=1e-4)
        assert float(b["val_mIoU"]) == pytest.approx(a["val_mIoU"], abs=1e-6)
    w1 = load_state_dict(tmp_path / "one" / "last" / "model.safetensors")
    w2 = load_state_dict(two_out / "last" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    import json

    assert json.loads((two_out / "train_config.json").read_text())["processes"] == 2
    model = load_semantic_model(two_out / "best")
    img = np.zeros((32, 32, 3), np.uint8)
    assert predict_semantic(model, img).labels.shape == (32, 32)


def test_bad_process_settings_are_refused(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", 8, 2, size=32, seed=3)
    from click.testing import CliRunner

    from masklab.cli import main

    r = CliRunner().invoke(main, [*_cli({"data": str(data), "out": str(tmp_path / "o")}),
                                  "--nproc", "0"])
    assert r.exit_code == 2 and "--nproc must be at least 1" in r.output
    from masklab import distributed
    from masklab.tasks.semantic import _train

    cfg = TrainConfig(data=str(data), out=str(tmp_path / "p"), device="cpu",
                      **{**OPTS, "batch_size": 3})
    with pytest.raises(ValueError, match="does not split over 2 processes"):
        _train(cfg, distributed.Dist(rank=0, world=2), torch.device("cpu"))


def test_instances_on_two_processes(tmp_path):
    """``train instances --nproc 2`` (DDP over gloo): rank 0 alone speaks and writes; the
    validation AP, computed on both ranks' shares and merged, is the one-process AP of the
    written checkpoint; the loss is near the one-process run's (R-CNN samplers draw from each
    process's own generator, so not equal)."""
    import json
    import math

    from masklab.data.synthetic import write_shapes_coco
    from masklab.models.objects import load_object_model
    from masklab.tasks.instances_train import (
        CocoTrainDataset,
        InstanceTrainConfig,
        evaluate_instances,
        train_instances,
    )

    d = write_shapes_coco(tmp_path / "shapes", 8, 5, size=64, per_image=2)
    opts = {"model_config": {"min_size": 64, "max_size": 64, "rpn_post_nms_top_n_test": 50,
                             "box_detections_per_img": 20}}
    cli = ["-q", "train", "instances", "--data", d / "train.json", "--images", d / "images",
           "--val-data", d / "val.json", "--model", "maskrcnn_resnet18_fpn", "--model-arg",
           "min_size=64", "--model-arg", "max_size=64", "--model-arg",
           "rpn_post_nms_top_n_test=50", "--model-arg", "box_detections_per_img=20",
           "--no-pretrained", "--batch-size", 4, "--optimizer", "adamw", "--lr", 1e-4,
           "--workers", 0, "--epochs", 1, "--no-flip", "--device", "cpu",
           "--out", tmp_path / "two", "--nproc", 2]
    r = subprocess.run([sys.executable, "-m", "masklab.cli", *map(str, cli)],
                       capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("best AP") == 1
    log = _log(tmp_path / "two" / "log.csv")
    assert [int(row["epoch"]) for row in log] == [1]
    assert json.loads((tmp_path / "two" / "train_config.json").read_text())["processes"] == 2
    model = load_object_model(tmp_path / "two" / "best")
    val = CocoTrainDataset(d / "val.json", d / "images", model.class_names[1:])
    ap = evaluate_instances(model, val, torch.device("cpu"), quiet=True).stats[0]
    assert float(log[0]["AP"]) == pytest.approx(ap, abs=1e-9)
    torch.manual_seed(0)
    one = train_instances(InstanceTrainConfig(
        data=str(d / "train.json"), images=str(d / "images"), out=str(tmp_path / "one"),
        model="maskrcnn_resnet18_fpn", pretrained=False, batch_size=4, optimizer="adamw",
        lr=1e-4, workers=0, epochs=1, flip=False, device="cpu", quiet=True, **opts))
    a, b = one["history"][0]["loss"], float(log[0]["loss"])
    assert math.isfinite(b) and abs(a - b) < 0.25 * a


def test_a_time_budget_ends_both_processes_after_the_same_step(tmp_path):
    """Every rank takes rank 0's clock: the same learning rate at each step and the same
    last step (a rank that stopped alone would leave the other waiting in an all-reduce)."""
    data = write_shapes_dataset(tmp_path / "shapes", 24, 6, size=32, seed=3)
    args = _cli({"data": str(data), "out": str(tmp_path / "two")})
    at = args.index("--epochs")
    args[at + 1] = "100000"
    args[args.index("--max-steps"):args.index("--max-steps") + 2] = ["--minutes", "0.05"]
    r = subprocess.run([sys.executable, "-m", "masklab.cli", "-q", *args, "--nproc", "2"],
                       capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    log = _log(tmp_path / "two" / "log.csv")
    lrs = [float(row["lr"]) for row in log]
    assert len(lrs) >= 2 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.2 * 1e-2, lrs
