import csv
import json

from masklab.data.synthetic import write_shapes_dataset
from masklab.io.images import read_label_png
from tests.test_cli import run


def test_models_lists_registry_with_metadata():
    out = run("models", "--task", "semantic", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["deeplabv3_resnet50"]["classes"] == 21
    assert rows["segformer-b0-ade"]["classes"] == 150 and rows["unet"]["params"] > 0
    assert "params (M)" in run("models").stdout


def test_train_then_segment_through_the_cli(tmp_path):
    data = write_shapes_dataset(tmp_path / "shapes", 16, 4, size=48, seed=3)
    out = run("-q", "train", "semantic", "--data", data, "--model", "unet", "--model-arg",
              "depth=2", "--model-arg", "width=4", "--num-classes", 4, "--epochs", 2,
              "--batch-size", 8, "--crop", "32,32", "--workers", 0, "--class-weights",
              "median", "--loss", "ce+dice", "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    assert "best val mIoU" in out.stdout
    assert (tmp_path / "run" / "best" / "config.json").is_file()
    assert (tmp_path / "run" / "tb").is_dir()  # TensorBoard events
    seg = run("-q", "segment", "semantic", data / "val" / "images", "--model",
              tmp_path / "run" / "best", "--out", tmp_path / "pred", "--areas", "--tile", 32,
              "--flip")
    assert seg.returncode == 0, seg.stderr
    lab = read_label_png(tmp_path / "pred" / "00000.png")
    assert lab.shape == (48, 48) and lab.max() < 4
    assert (tmp_path / "pred" / "00000_overlay.png").is_file()
    rows = list(csv.DictReader(open(tmp_path / "pred" / "areas.csv")))
    per_image = {}
    for r in rows:
        per_image.setdefault(r["image"], 0)
        per_image[r["image"]] += int(r["pixels"])
    assert set(per_image.values()) == {48 * 48}
    # evaluate the predictions with the eval verb
    ev = run("eval", "semantic", data / "val" / "labels", tmp_path / "pred", "--num-classes",
             4, "--json", tmp_path / "m.json")
    assert ev.returncode == 0, ev.stderr
    assert 0 <= json.loads((tmp_path / "m.json").read_text())["pixel_acc"] <= 1


def test_segment_errors(tmp_path):
    out = run("segment", "semantic", tmp_path / "nothing*.png", "--model", "unet",
              "--num-classes", 3, "--out", tmp_path / "o")
    assert out.returncode == 2 and "no such file" in out.stderr
    bad = run("train", "semantic", "--data", tmp_path, "--out", tmp_path / "r")
    assert bad.returncode == 2 and "layout" in bad.stderr


def test_segment_at_a_scale_reproduces_the_training_time_validation(tmp_path):
    """segment --scales 0.5 then eval semantic gives the very figures that training reports
    for its validation at eval_scale 0.5 (``evaluate_model``): the same input and
    probability resizing, labels never resized."""
    import torch

    from masklab.data.semantic import open_dataset
    from masklab.models.semantic import load_semantic_model, save_checkpoint
    from masklab.tasks.semantic import evaluate_model

    data = write_shapes_dataset(tmp_path / "shapes", 1, 6, size=64, seed=5)
    torch.manual_seed(0)
    model = load_semantic_model("unet", weights=None, num_classes=4,
                                config={"depth": 2, "width": 4})
    head = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # random but decisive class scores: labels vary everywhere
        head.weight.normal_(0, 1)
    save_checkpoint(tmp_path / "ck", model, {})
    val = open_dataset(data, "val", num_classes=4)
    want = evaluate_model(model, val, 4, 255, quiet=True, scale=0.5)
    predicted = want.confusion.sum(axis=0) / want.confusion.sum()
    assert (predicted > 0.1).sum() >= 2  # no single-class output
    seg = run("-q", "segment", "semantic", data / "val" / "images", "--model", tmp_path / "ck",
              "--scales", "0.5", "--no-overlay", "--out", tmp_path / "pred")
    assert seg.returncode == 0, seg.stderr
    ev = run("-q", "eval", "semantic", data / "val" / "labels", tmp_path / "pred",
             "--num-classes", 4, "--json", tmp_path / "m.json")
    assert ev.returncode == 0, ev.stderr
    got = json.loads((tmp_path / "m.json").read_text())
    assert abs(got["mIoU"] - want.miou) < 1e-12, (got["mIoU"], want.miou)
    assert abs(got["pixel_acc"] - want.pixel_acc) < 1e-12


def test_train_on_a_sequence_disjoint_split_through_the_cli(tmp_path):
    from tests.data.test_semantic_datasets import _camvid_like

    root = _camvid_like(tmp_path / "cv", {"train": ["A_1", "A_2", "B_1", "B_2"],
                                          "val": ["A_3", "C_1"]})
    out = run("-q", "train", "semantic", "--data", root, "--model", "unet", "--model-arg",
              "depth=2", "--model-arg", "width=4", "--epochs", 1, "--batch-size", 2,
              "--crop", "none", "--scale", "1,1", "--workers", 0, "--jitter", 0.4, "--hue",
              0.05, "--gamma", "0.6,1.6", "--train-split", "train+val", "--train-sequences",
              "A_,B_", "--val-split", "train+val", "--val-sequences", "C_", "--eval-scale",
              0.5, "--class-weights", "sqrt-median", "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    cfg = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert cfg["class_weights"] == "sqrt-median"
    assert cfg["train_sequences"] == ["A_", "B_"] and cfg["val_sequences"] == ["C_"]
    assert cfg["gamma"] == [0.6, 1.6] and cfg["hue"] == 0.05 and cfg["eval_scale"] == 0.5
    bad = run("train", "semantic", "--data", root, "--val-split", "train+val",
              "--val-sequences", "Z_", "--out", tmp_path / "r2")
    assert bad.returncode == 2 and "no image of split 'train+val' starts with Z_" in bad.stderr


def test_model_args_parse_numbers_and_booleans():
    from masklab.cli.tasks import _parse_kv

    assert _parse_kv(("depth=3", "lr=0.5", "lcn=true", "x=False", "norm=group")) == {
        "depth": 3, "lr": 0.5, "lcn": True, "x": False, "norm": "group"}
