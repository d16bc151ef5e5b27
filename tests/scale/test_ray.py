"""Batch verbs on a real local Ray cluster (``ray.init(num_cpus=2)``): outputs equal to the
in-process run; bad engine settings are one-line errors before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from masklab.cli import main
from tests.small_models import random_images, small_maskrcnn

ray = pytest.importorskip("ray")
N_KILL = 24  # images of the killed-worker run: a few seconds of work over 2 workers


@pytest.fixture(scope="module")
def cluster():
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR", configure_logging=False)
    yield
    ray.shutdown()


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_eval_coco_on_ray_equals_local(cluster, tmp_path):
    from masklab.data.synthetic import write_shapes_coco

    root = write_shapes_coco(tmp_path / "c", n_train=2, n_val=12, size=48, seed=5)
    gt = json.loads((root / "val.json").read_text())
    rng = np.random.default_rng(0)
    res = []
    for a in gt["annotations"]:  # detections: the truth, jittered, with noise scores
        x, y, w, h = a["bbox"]
        for _ in range(2):
            d = rng.normal(0, 2, 4)
            res.append({"image_id": a["image_id"], "category_id": a["category_id"],
                        "bbox": [x + d[0], y + d[1], max(1, w + d[2]), max(1, h + d[3])],
                        "score": float(rng.uniform())})
    (tmp_path / "res.json").write_text(json.dumps(res))
    out = {}
    for engine in ("local", "ray"):
        r = _invoke("eval", "coco", root / "val.json", tmp_path / "res.json", "--iou-type",
                    "bbox", "--engine", engine, "--workers", 3, "--json",
                    tmp_path / f"{engine}.json")
        assert r.exit_code == 0, r.output
        out[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    assert out["ray"]["stats"] == out["local"]["stats"]
    assert out["ray"]["per_category"] == out["local"]["per_category"]
    assert 0.05 < out["local"]["stats"][0] < 1.0


def test_every_eval_verb_on_ray_equals_local(cluster, tmp_path):
    """semantic, matting, the click benchmarks (images and video), panoptic and DAVIS:
    shards evaluated as Ray tasks, accumulators merged; the JSON equals the in-process run's
    (and the reference fixtures')."""
    from masklab.io.images import write_image, write_label_png
    from tests.conftest import shared_path

    rng = np.random.default_rng(3)
    for i in range(5):
        gt = rng.integers(0, 4, (20, 30))
        write_label_png(tmp_path / "sem" / "gt" / f"{i}.png", gt)
        write_label_png(tmp_path / "sem" / "pred" / f"{i}.png",
                        np.where(rng.random((20, 30)) < 0.7, gt, rng.integers(0, 4, (20, 30))))
        alpha = rng.integers(0, 256, (24, 24), dtype=np.uint8)
        write_image(tmp_path / "mat" / "gt" / f"{i}.png", alpha)
        write_image(tmp_path / "mat" / "pred" / f"{i}.png",
                    np.clip(alpha.astype(int) + rng.integers(-30, 30, (24, 24)), 0, 255)
                    .astype(np.uint8))
    verbs = {"semantic": ["semantic", tmp_path / "sem" / "gt", tmp_path / "sem" / "pred",
                          "--num-classes", 4],
             "matting": ["matting", tmp_path / "mat" / "pred", tmp_path / "mat" / "gt"]}
    # the click benchmarks: a backend per shard, the NoC / J&F-curve accumulators merged
    from tests.interactive.test_classical import two_regions
    from tests.video.test_session import moving_squares

    img, gt = two_regions()
    for i in range(3):
        write_image(tmp_path / "ia" / "img" / f"{i}.png", np.roll(img, 7 * i, axis=1))
        write_image(tmp_path / "ia" / "gt" / f"{i}.png",
                    np.roll(gt, 7 * i, axis=1).astype(np.uint8))
    verbs["interactive"] = ["interactive", "--backend", "grabcut", "--images",
                            tmp_path / "ia" / "img", "--masks", tmp_path / "ia" / "gt",
                            "--max-clicks", 3]
    frames, red, green = moving_squares(6)
    for seq, obj in (("red", red), ("green", green)):
        for t, fr in enumerate(frames):
            write_image(tmp_path / "vi" / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", fr)
            write_label_png(tmp_path / "vi" / "Annotations" / "480p" / seq / f"{t:05d}.png",
                            obj[t].astype(np.uint8) * 255)
    verbs["video-interactive"] = ["video-interactive", "--davis-root", tmp_path / "vi",
                                  "--interactions", 2]
    pan, dav = shared_path("fixtures", "panoptic_dev"), shared_path("fixtures", "davis_dev")
    if pan.is_dir():
        verbs["panoptic"] = ["panoptic", "--gt-json", pan / "gt.json", "--gt-dir", pan / "gt",
                             "--pred-json", pan / "pred.json", "--pred-dir", pan / "pred"]
    if dav.is_dir():
        verbs["davis"] = ["davis", "--davis-root", dav / "DAVIS", "--results", dav / "results"]
    for verb, args in verbs.items():
        out = {}
        for engine in ("local", "ray"):
            r = _invoke("-q", "eval", *args, "--engine", engine, "--workers", 3, "--json",
                        tmp_path / f"{verb}_{engine}.json")
            assert r.exit_code == 0, (verb, r.output)
            out[engine] = json.loads((tmp_path / f"{verb}_{engine}.json").read_text())
        # equal up to the order of float sums (PQ adds IoUs per shard, as panopticapi does)
        assert _flat(out["ray"]) == pytest.approx(_flat(out["local"]), rel=1e-12, abs=1e-15)
    if pan.is_dir():
        want = json.loads((pan / "expected.json").read_text())["All"]["pq"]
        assert out_pq(tmp_path) == pytest.approx(want, abs=1e-12)
    # an input error inside a shard is one line, as in-process
    write_label_png(tmp_path / "sem" / "pred" / "4.png", np.zeros((5, 5), np.uint8))
    r = _invoke("-q", "eval", *verbs["semantic"], "--engine", "ray", "--workers", 2)
    assert r.exit_code == 2 and "prediction is 5x5, ground truth 30x20" in r.output
    assert len(r.output.strip().splitlines()) == 1


def _flat(d, prefix=""):
    if isinstance(d, dict):
        return {k2: v2 for k, v in d.items() for k2, v2 in _flat(v, f"{prefix}/{k}").items()}
    if isinstance(d, list):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in _flat(v, f"{prefix}/{i}").items()}
    return {prefix: d}


def out_pq(tmp_path):
    return json.loads((tmp_path / "panoptic_ray.json").read_text())["All"]["pq"]


def test_segment_instances_on_ray_equals_local(cluster, tmp_path):
    from masklab.io.coco import load_results
    from masklab.rle import decode

    small_maskrcnn(tmp_path / "ckpt")
    random_images(tmp_path / "img", 3, 48, 64)
    common = ["-q", "segment", "instances", tmp_path / "img", "--model", tmp_path / "ckpt",
              "--score-threshold", 0, "--max-detections", 3, "--batch-size", 2]
    a = _invoke(*common, "--out", tmp_path / "local")
    assert a.exit_code == 0, a.output
    b = _invoke(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert b.exit_code == 0, b.output
    assert (json.loads((tmp_path / "ray" / "images.json").read_text()) ==
            json.loads((tmp_path / "local" / "images.json").read_text()))
    ra = load_results(tmp_path / "local" / "results.json", iou_type="segm")
    rb = load_results(tmp_path / "ray" / "results.json", iou_type="segm")
    assert len(ra) == len(rb) == 9
    for x, y in zip(ra, rb, strict=True):  # the same detections in the same order
        assert (x["image_id"], x["category_id"]) == (y["image_id"], y["category_id"])
        assert y["score"] == pytest.approx(x["score"], abs=1e-4)
        np.testing.assert_allclose(y["bbox"], x["bbox"], atol=1e-2)
        ma, mb = decode([x["segmentation"]])[0], decode([y["segmentation"]])[0]
        assert (ma != mb).sum() <= 2
    assert sorted(p.name for p in (tmp_path / "ray").glob("*_overlay.png")) == \
        [f"{i}_overlay.png" for i in range(3)]
    # resume across engines: an in-process run stopped after image 0, finished on Ray; Ray
    # does only images 1 and 2 (each recorded once) and the merged files equal the local run
    half = _invoke(*common[:3], tmp_path / "img" / "0.jpg", *common[4:], "--out",
                   tmp_path / "resumed")
    assert half.exit_code == 0, half.output
    c = _invoke(*common, "--out", tmp_path / "resumed", "--engine", "ray", "--workers", 2)
    assert c.exit_code == 0, c.output
    rows = [json.loads(x) for x in
            (tmp_path / "resumed" / "manifest.jsonl").read_text().splitlines()[1:]]
    images = [r["key"] for r in rows if r["key"] != "__run__"]  # the run's row aside
    assert len(images) == 3 and len(set(images)) == 3
    assert (tmp_path / "resumed" / "images.json").read_text() == \
        (tmp_path / "local" / "images.json").read_text()
    rc = load_results(tmp_path / "resumed" / "results.json", iou_type="segm")
    assert [(x["image_id"], x["category_id"]) for x in rc] == \
        [(x["image_id"], x["category_id"]) for x in ra]
    other = _invoke(*common, "--out", tmp_path / "resumed", "--max-detections", 5)
    assert other.exit_code == 2 and "other settings (max_detections: 3, now 5)" in other.output


def test_label_on_ray_equals_local_and_resumes_across_engines(cluster, tmp_path,
                                                               monkeypatch):
    """``masklab label --boxes-from`` (boxes of a COCO file → GrabCut masks): the dataset of
    a Ray run, and of a run started in-process and finished on Ray, is the in-process one."""
    from masklab.data.synthetic import write_shapes_coco

    root = write_shapes_coco(tmp_path / "c", n_train=2, n_val=6, size=48, seed=2)
    val = json.loads((root / "val.json").read_text())
    files = [root / "images" / im["file_name"] for im in val["images"]]
    common = ["-q", "label", "--boxes-from", root / "val.json", "--segmenter", "grabcut"]
    assert _invoke(*common, *files, "--out", tmp_path / "local").exit_code == 0
    r = _invoke(*common, *files, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert r.exit_code == 0, r.output
    assert _invoke(*common, *files[:2], "--out", tmp_path / "mixed").exit_code == 0
    r = _invoke(*common, *files, "--out", tmp_path / "mixed", "--engine", "ray")
    assert r.exit_code == 0, r.output
    want = json.loads((tmp_path / "local" / "annotations.json").read_text())
    assert len(want["annotations"]) == len(val["annotations"])
    for run in ("ray", "mixed"):
        assert json.loads((tmp_path / run / "annotations.json").read_text()) == want, run
        for f in (tmp_path / "local" / "yolo" / "labels").iterdir():
            assert (tmp_path / run / "yolo" / "labels" / f.name).read_text() == f.read_text()
    lines = (tmp_path / "mixed" / "progress.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["image"] for x in lines) == sorted(f.name for f in files)
    # --classes auto: the captions are made on the workers (this process cannot load a
    # captioner), each image's own prompts travel to the labelling workers
    import masklab.grounding.captions as captions
    from tests.grounding import tiny

    tiny.blip(tmp_path / "blip", favour="dog")
    tiny.grounding_dino(tmp_path / "gd")
    auto = ["-q", "label", *files[:3], "--classes", "auto", "--captioner", tmp_path / "blip",
            "--detector", tmp_path / "gd", "--segmenter", "box", "--box-threshold", 0.2]
    assert _invoke(*auto, "--out", tmp_path / "auto_local").exit_code == 0

    def not_here(*a, **k):
        raise AssertionError("captioned on the driver")

    monkeypatch.setattr(captions, "load_captioner", not_here)
    r = _invoke(*auto, "--out", tmp_path / "auto_ray", "--engine", "ray", "--workers", 1)
    assert r.exit_code == 0, r.output
    assert sorted((tmp_path / "auto_ray" / "captions.jsonl").read_text().splitlines()) == \
        sorted((tmp_path / "auto_local" / "captions.jsonl").read_text().splitlines())
    want = json.loads((tmp_path / "auto_local" / "annotations.json").read_text())
    got = json.loads((tmp_path / "auto_ray" / "annotations.json").read_text())
    assert want["annotations"] and [a["prompt"] for a in want["annotations"]] == \
        [a["prompt"] for a in got["annotations"]] and want["categories"] == got["categories"]
    np.testing.assert_allclose([a["bbox"] for a in got["annotations"]],
                               [a["bbox"] for a in want["annotations"]], atol=1e-3)


def test_segment_panoptic_on_ray_equals_local(cluster, tmp_path):
    """Fusion of a small Mask R-CNN and a U-Net: each worker writes its images' PNGs, and
    panoptic.json (merged in input order) is the in-process one; PQ of one against the
    other is 1."""
    from masklab.models.objects import load_object_model, save_object_checkpoint
    from masklab.models.semantic import load_semantic_model, save_checkpoint
    from tests.test_cli_panoptic import _consistent, _images

    torch.manual_seed(0)
    inst = load_object_model("maskrcnn_resnet18_fpn", weights=None, num_classes=3,
                             class_names=["__background__", "square", "circle"],
                             config={"min_size": 64, "max_size": 96,
                                     "rpn_post_nms_top_n_test": 20,
                                     "box_detections_per_img": 5})
    save_object_checkpoint(tmp_path / "inst", inst)
    sem = load_semantic_model("unet", weights=None, num_classes=4,
                              class_names=["background", "square", "circle", "sky"],
                              config={"depth": 2, "width": 8})
    save_checkpoint(tmp_path / "sem", sem)
    _images(tmp_path / "img", n=4)
    common = ["-q", "segment", "panoptic", tmp_path / "img", "--model", tmp_path / "inst",
              "--semantic-model", tmp_path / "sem", "--threshold", 0.0, "--stuff-area", 1]
    assert _invoke(*common, "--out", tmp_path / "local").exit_code == 0
    r = _invoke(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert r.exit_code == 0, r.output
    local, n = _consistent(tmp_path / "local")
    ray_, _ = _consistent(tmp_path / "ray")
    assert n > 0 and ray_["images"] == local["images"]
    assert ray_["categories"] == local["categories"]
    r = _invoke("-q", "eval", "panoptic", "--gt-json", tmp_path / "local" / "panoptic.json",
                "--gt-dir", tmp_path / "local" / "panoptic", "--pred-json",
                tmp_path / "ray" / "panoptic.json", "--pred-dir", tmp_path / "ray" / "panoptic",
                "--json", tmp_path / "pq.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "pq.json").read_text())["All"]["pq"] > 0.99


def test_everything_on_ray_equals_local(cluster, tmp_path):
    """``masklab everything`` over a folder (classical SLIC regions): masks.json of the Ray run
    (ids in input order) is the in-process one, with an overlay per image."""
    from masklab.io.images import write_image
    from tests.interactive.test_everything import regions_image

    for i in range(3):
        img, _ = regions_image()
        write_image(tmp_path / "img" / f"{i}.png", np.roll(img, 9 * i, axis=0))
    common = ["-q", "everything", tmp_path / "img", "--min-area", 30]
    assert _invoke(*common, "--out", tmp_path / "local").exit_code == 0
    r = _invoke(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert r.exit_code == 0, r.output
    want = json.loads((tmp_path / "local" / "masks.json").read_text())
    assert [im["id"] for im in want["images"]] == [1, 2, 3] and len(want["annotations"]) >= 3
    assert json.loads((tmp_path / "ray" / "masks.json").read_text()) == want
    assert sorted(p.name for p in (tmp_path / "ray").glob("*_overlay.png")) == \
        [f"{i}_overlay.png" for i in range(3)]


def test_track_many_videos_on_ray_equals_local(cluster, tmp_path):
    """``masklab track --davis-root`` (the flow backend, no weights): every sequence from its
    first annotated frame; the Ray run writes the in-process frames, and `eval davis` scores
    them."""
    from masklab.io.images import read_label_png, write_image, write_label_png
    from tests.video.test_session import moving_squares

    frames, red, green = moving_squares(6)
    for seq, obj in (("red", red), ("green", green), ("both", None)):
        for t, fr in enumerate(frames):
            write_image(tmp_path / "d" / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg", fr)
            ids = red[t] * 1 + green[t] * 2 if obj is None else obj[t] * 1
            write_label_png(tmp_path / "d" / "Annotations" / "480p" / seq / f"{t:05d}.png",
                            ids.astype(np.uint8))
    common = ["-q", "track", "--davis-root", tmp_path / "d", "--no-overlay"]
    assert _invoke(*common, "--out", tmp_path / "local").exit_code == 0
    r = _invoke(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert r.exit_code == 0, r.output
    for seq in ("red", "green", "both"):
        for t in range(6):
            a = read_label_png(tmp_path / "local" / seq / f"{t:05d}.png")
            b = read_label_png(tmp_path / "ray" / seq / f"{t:05d}.png")
            assert (a == b).all(), (seq, t)
        assert (tmp_path / "ray" / "tracks" / f"{seq}.json").is_file()
    r = _invoke("-q", "eval", "davis", "--davis-root", tmp_path / "d", "--results",
                tmp_path / "ray", "--json", tmp_path / "jf.json")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "jf.json").read_text())["J-Mean"] > 0.8


def test_address_none_is_a_new_local_cluster():
    """``--address none`` (as the help says) starts a local cluster; it is not a host name.
    In a process of its own: this module's tests share one running cluster."""
    import subprocess
    import sys

    code = ("from masklab.scale.ray_engine import connect; r = connect('none', 1); "
            "print('CPUS', int(r.cluster_resources()['CPU'])); r.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "CPUS" in out.stdout, out.stderr[-2000:]


def test_engine_settings_fail_before_any_work(tmp_path):
    (tmp_path / "gt.json").write_text("{}")
    r = _invoke("eval", "coco", tmp_path / "gt.json", tmp_path / "gt.json", "--engine", "ray",
                "--workers", 0)
    assert r.exit_code == 2 and "--workers must be at least 1" in r.output
    if not ray.is_initialized():
        r = _invoke("eval", "coco", tmp_path / "gt.json", tmp_path / "gt.json", "--engine",
                    "ray", "--address", "ray://127.0.0.1:1")
        assert r.exit_code == 2 and "cannot reach the Ray cluster" in r.output
        assert len(r.output.strip().splitlines()) == 1


def test_a_killed_worker_is_retried_and_every_image_appears_once(tmp_path):
    """A worker process killed (SIGKILL) in the middle of a run: Ray restarts the actor and
    retries its batch; the merged results hold every image exactly once."""
    import os
    import signal
    import threading
    import time


    if ray.is_initialized():
        ray.shutdown()
    pids = tmp_path / "pids"
    pids.mkdir()
    os.environ["MASKLAB_RAY_PID_DIR"] = str(pids)  # inherited by the workers
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
        small_maskrcnn(tmp_path / "ckpt")
        random_images(tmp_path / "img", N_KILL, 48, 64, seed=1, digits=2)
        killed = []

        def kill_one():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                found = sorted(pids.iterdir())
                if found:
                    time.sleep(0.3)  # let it start on a batch
                    os.kill(int(found[0].name), signal.SIGKILL)
                    killed.append(found[0].name)
                time.sleep(0.05)

        t = threading.Thread(target=kill_one)
        t.start()
        r = _invoke("-q", "segment", "instances", tmp_path / "img", "--model",
                    tmp_path / "ckpt", "--score-threshold", 0, "--max-detections", 2,
                    "--batch-size", 1, "--no-overlay", "--out", tmp_path / "ray", "--engine",
                    "ray", "--workers", 2)
        t.join()
        assert killed, "no worker was killed"
        assert r.exit_code == 0, r.output
        assert len(list(pids.iterdir())) >= 3  # the killed actor was replaced
        images = json.loads((tmp_path / "ray" / "images.json").read_text())["images"]
        assert [im["file_name"] for im in images] == [f"{i:02d}.jpg" for i in range(N_KILL)]
        res = json.loads((tmp_path / "ray" / "results.json").read_text())
        assert sorted({x["image_id"] for x in res}) == list(range(1, N_KILL + 1))
        assert len(res) == 2 * N_KILL
    finally:
        os.environ.pop("MASKLAB_RAY_PID_DIR", None)
        ray.shutdown()


def test_segment_semantic_on_ray_equals_local(cluster, tmp_path):
    from masklab.io.images import read_label_png
    from masklab.models.semantic import load_semantic_model, save_checkpoint

    torch.manual_seed(0)
    m = load_semantic_model("unet", weights=None, num_classes=4,
                            config={"depth": 2, "width": 4})
    save_checkpoint(tmp_path / "ckpt", m, {})
    random_images(tmp_path / "img", 4, 40, 56, ext="png")
    common = ["-q", "segment", "semantic", tmp_path / "img", "--model", tmp_path / "ckpt",
              "--areas"]
    assert _invoke(*common, "--out", tmp_path / "local").exit_code == 0
    r = _invoke(*common, "--out", tmp_path / "ray", "--engine", "ray", "--workers", 2)
    assert r.exit_code == 0, r.output
    for i in range(4):
        a = read_label_png(tmp_path / "local" / f"{i}.png")
        b = read_label_png(tmp_path / "ray" / f"{i}.png")
        assert (a != b).sum() <= 2
        assert (tmp_path / "ray" / f"{i}_overlay.png").is_file()
    la = (tmp_path / "local" / "areas.csv").read_text().splitlines()
    lb = (tmp_path / "ray" / "areas.csv").read_text().splitlines()
    assert [x.split(",")[:3] for x in la] == [x.split(",")[:3] for x in lb]


def test_training_under_ray_train_equals_one_process(cluster, tmp_path):
    """Ray Train's TorchTrainer, 2 workers (DDP over gloo): one epoch finishes, rank 0 writes
    the checkpoint, and the loss is the single-process run's with the same global batch."""
    import csv

    from masklab.data.synthetic import write_shapes_dataset
    from masklab.models.semantic import load_semantic_model
    from masklab.tasks.semantic import TrainConfig, predict_semantic, train_semantic

    data = write_shapes_dataset(tmp_path / "shapes", 16, 4, size=32, seed=3)
    opts = ["--model", "unet", "--model-arg", "depth=2", "--model-arg", "width=4",
            "--model-arg", "norm=group", "--num-classes", 4, "--batch-size", 8, "--crop",
            "none", "--scale", "1,1", "--jitter", 0, "--no-flip", "--epochs", 1, "--lr",
            0.01, "--workers", 0, "--device", "cpu"]
    r = _invoke("-q", "train", "semantic", "--data", data, "--out", tmp_path / "ray", *opts,
                "--engine", "ray", "--nproc", 2)
    assert r.exit_code == 0, r.output
    assert "2 Ray Train workers" in r.output
    with open(tmp_path / "ray" / "log.csv") as f:
        log = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in log] == [1]
    torch.set_num_threads(1)
    one = train_semantic(TrainConfig(
        data=str(data), out=str(tmp_path / "one"), model="unet",
        model_config={"depth": 2, "width": 4, "norm": "group"}, num_classes=4, batch_size=8,
        crop=None, scale=(1.0, 1.0), jitter=0.0, flip=False, epochs=1, lr=1e-2, workers=0,
        device="cpu", quiet=True, tensorboard=False))
    assert float(log[0]["loss"]) == pytest.approx(one.history[0]["loss"], rel=1e-4)
    assert float(log[0]["val_mIoU"]) == pytest.approx(one.history[0]["val_mIoU"], abs=1e-6)
    model = load_semantic_model(tmp_path / "ray" / "best")
    assert predict_semantic(model, np.zeros((32, 32, 3), np.uint8)).labels.shape == (32, 32)
    bad = _invoke("train", "semantic", "--data", data, "--out", tmp_path / "bad", *opts,
                  "--engine", "ray", "--nproc", 3)
    assert bad.exit_code == 2 and "does not split over 3 processes" in bad.output
    # the object trainer goes through the same Ray Train loop
    from masklab.data.synthetic import write_shapes_coco
    from masklab.models.objects import load_object_model

    d = write_shapes_coco(tmp_path / "coco", 4, 2, size=48, per_image=1)
    r = _invoke("-q", "train", "instances", "--data", d / "train.json", "--images",
                d / "images", "--model", "maskrcnn_resnet18_fpn", "--model-arg", "min_size=48",
                "--model-arg", "max_size=48", "--no-pretrained", "--batch-size", 2,
                "--workers", 0, "--epochs", 1, "--device", "cpu", "--out", tmp_path / "inst",
                "--engine", "ray", "--nproc", 2)
    assert r.exit_code == 0, r.output
    assert "2 Ray Train workers" in r.output
    assert load_object_model(tmp_path / "inst" / "best").class_names[0] == "__background__"


def test_app_prelabel_on_ray_equals_local(cluster, tmp_path):
    """The app's pre-labelling job with ``--engine ray``: the same proposals as in the job
    worker, every image once, a bad image reported and skipped."""
    import time

    from fastapi.testclient import TestClient

    from masklab.app import create_app
    from tests.app.helpers import RECTS, Api, make_images

    make_images(tmp_path / "data" / "imgs", {f"{n}{k}.png": r for n, r in RECTS.items()
                                             for k in range(2)})
    import torch

    from masklab.app import db as _db
    from masklab.models.semantic import load_semantic_model, save_checkpoint

    torch.manual_seed(0)  # a model source too: its uncertainty and queue come back from Ray
    save_checkpoint(tmp_path / "data" / "unet", load_semantic_model(
        "unet", weights=None, num_classes=2, class_names=["background", "box"],
        config={"depth": 2, "width": 4}), {})
    results = {}
    for engine in ("local", "ray"):
        app = create_app(tmp_path / "data", db_url=f"sqlite:///{tmp_path / engine}.db",
                         backend="grabcut", engine=engine, ray_workers=2)
        with TestClient(app) as c:
            api = Api(c)
            p = api.post("/api/projects", json={"name": "p", "classes": ["box"]})
            api.post(f"/api/projects/{p['id']}/import", json={"folder": "imgs"})
            if engine == "ray":  # damaged after import: reported, the job goes on
                (tmp_path / "data" / "imgs" / "c.png1.png").write_bytes(b"not an image")
            jid = api.post(f"/api/projects/{p['id']}/jobs", json={
                "kind": "prelabel", "params": {"source": "everything", "class_id": 1,
                                               "limit": 3}})["id"]
            t = time.monotonic()
            while (j := api.get(f"/api/jobs/{jid}"))["state"] in ("queued", "running"):
                assert time.monotonic() - t < 300
                time.sleep(0.1)
            assert j["state"] == "done" and j["done"] == 6, j
            results[engine] = {i["file_name"]: [a["mask"]["counts"] for a in api.get(
                f"/api/images/{i['id']}/annotations")["annotations"]]
                for i in api.get(f"/api/projects/{p['id']}/images")["items"]}
            results[engine + "-job"] = j
            mj = api.post(f"/api/projects/{p['id']}/jobs", json={
                "kind": "prelabel", "params": {"source": "model", "model": "unet"}})["id"]
            t = time.monotonic()
            while api.get(f"/api/jobs/{mj}")["state"] in ("queued", "running"):
                assert time.monotonic() - t < 300
                time.sleep(0.1)
            with app.state.store.Session() as s:
                rows = s.query(_db.Image).all()
                results[engine + "-queue"] = {
                    i.file_name: (i.uncertainty, i.priority) for i in rows
                    if i.file_name != "c.png1.png"}
    lq, rq = results["local-queue"], results["ray-queue"]
    assert lq.keys() == rq.keys() and all(u is not None for u, _ in lq.values())
    for k in lq:  # the same uncertainty; a queue priority (its order may differ: arrival)
        assert abs(lq[k][0] - rq[k][0]) < 1e-5 and rq[k][1] is not None
    assert len({p for _, p in rq.values()}) == len(rq)
    assert results["ray-job"]["failed"] == 1
    assert results["ray-job"]["errors"][0].startswith("c.png1.png: ")
    assert results["local-job"]["failed"] == 0
    local = {k: v for k, v in results["local"].items() if k != "c.png1.png"}
    ray_ = {k: v for k, v in results["ray"].items() if k != "c.png1.png"}
    assert local == ray_ and all(local.values())
    assert results["ray"]["c.png1.png"] == []
