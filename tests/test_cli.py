import json
import os
import subprocess
import sys

import numpy as np

from masklab.io.coco import load_coco


def run(*args, cwd=None, env=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "masklab.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, env=e)


def test_version_help_info():
    from masklab import __version__

    out = run("--version")
    assert out.returncode == 0 and __version__ in out.stdout
    helptext = run("--help").stdout
    for verb in ("convert", "demo", "info", "weights"):
        assert verb in helptext
    info = run("info")
    assert info.returncode == 0
    assert "torch" in info.stdout and "cuda" in info.stdout and "weights cache" in info.stdout


def test_demo_then_convert_round_trip(tmp_path):
    out = run("-q", "demo", "--out", tmp_path / "demo")
    assert out.returncode == 0, out.stderr
    demo = tmp_path / "demo"
    for name in ("instances.json", "results.json", "shapes_overlay.png", "coins_overlay.png",
                 "shapes_panel.png", "labels/shapes.png", "yolo/data.yaml"):
        assert (demo / name).is_file(), name
    ds = load_coco(demo / "instances.json", images_dir=demo / "images")
    coins = [a for a in ds.annotations if a["category_id"] == 11]
    assert len(coins) == 24  # scikit-image's coins image shows 24 coins
    res = json.loads((demo / "results.json").read_text())
    assert len(res) == len(ds.annotations)

    conv = run("convert", demo / "instances.json", tmp_path / "inst", "--to", "instances")
    assert conv.returncode == 0, conv.stderr
    back = run("convert", tmp_path / "inst", tmp_path / "back.json", "--from", "instances",
               "--images", demo / "images")
    assert back.returncode == 0, back.stderr
    again = load_coco(tmp_path / "back.json")
    assert len(again.annotations) == len(ds.annotations)
    for img in ds.images:
        a = ds.masks(img["id"])
        b = again.masks(next(i["id"] for i in again.images if i["file_name"] == img["file_name"]))
        assert np.allclose(a.iou(b).max(axis=1), 1.0)


def test_bad_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "categories": [], "annotations": [{"id": 1}]}')
    out = run("convert", bad, tmp_path / "o", "--to", "labels")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and "missing key 'image_id'" in lines[0]
    assert not (tmp_path / "o").exists()
    missing = run("convert", tmp_path / "nope.json", tmp_path / "o2", "--to", "yolo")
    assert missing.returncode == 2 and "nope.json: no such file" in missing.stderr


def test_weights_verbs(tmp_path):
    env = {"MASKLAB_HOME": str(tmp_path / "home")}
    listing = run("weights", "list", "--json", env=env)
    rows = json.loads(listing.stdout)
    assert any(r["name"] == "torchvision/fcn_resnet50" and r["cached"] is False for r in rows)
    path = run("weights", "path", "torchvision/fcn_resnet50", env=env)
    expected = tmp_path / "home" / "weights" / "fcn_resnet50_coco-1167a1af.pth"
    assert path.stdout.strip() == str(expected)
    off = run("weights", "path", "torchvision/fcn_resnet50", "--download",
              env={**env, "MASKLAB_OFFLINE": "1"})
    assert off.returncode == 2 and "download https://download.pytorch.org" in off.stderr
    cached = tmp_path / "home/weights/fcn_resnet50_coco-1167a1af.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not the real file")
    ver = run("weights", "verify", env=env)
    assert ver.returncode == 1 and "FAIL torchvision/fcn_resnet50" in ver.stdout
    unknown = run("weights", "path", "nope", env=env)
    assert unknown.returncode == 2 and "unknown weights 'nope'" in unknown.stderr


def test_unexpected_error_is_one_line_exit_1(monkeypatch):
    from click.testing import CliRunner

    import masklab.sysinfo
    from masklab.cli import main

    def broken():
        raise OverflowError("Python integer 734 out of bounds for uint8")

    monkeypatch.setattr(masklab.sysinfo, "collect", broken)
    monkeypatch.delenv("MASKLAB_DEBUG", raising=False)
    r = CliRunner().invoke(main, ["info"])
    assert r.exit_code == 1
    assert r.stderr == ("masklab: internal error: OverflowError: Python integer 734 out of "
                        "bounds for uint8 (MASKLAB_DEBUG=1 shows the traceback)\n")
    assert "Traceback" not in r.output
    monkeypatch.setenv("MASKLAB_DEBUG", "1")
    r = CliRunner().invoke(main, ["info"])
    assert isinstance(r.exception, OverflowError)  # re-raised for debugging
    # bad input stays exit 2
    monkeypatch.delenv("MASKLAB_DEBUG")
    r = CliRunner().invoke(main, ["convert", "/nonexistent/x.json", "/tmp/y.json"])
    assert r.exit_code == 2 and r.stderr.startswith("masklab: error: ")


def test_cli_modules_one_per_verb_group():
    import masklab.cli as cli

    verbs = set(cli.main.commands)
    assert {"info", "convert", "weights", "demo", "eval", "models", "train", "segment",
            "export", "prompt", "everything", "matte", "composite", "track"} <= verbs
    for mod in ("general", "eval", "tasks", "interactive", "matting", "video"):
        __import__(f"masklab.cli.{mod}")


def test_a_device_that_is_not_there_is_bad_input_before_any_work(tmp_path):
    import torch

    img = tmp_path / "a.png"
    from masklab.io.images import write_image

    write_image(img, np.zeros((20, 30, 3), np.uint8))
    # checked by the shared option itself, so on every verb that takes --device
    for verb in (["track", img, "--point", "0,5,5", "--out", tmp_path / "o"],
                 ["eval", "video-interactive", "--davis-root", tmp_path]):
        out = run(*verb, "--device", "tpu")
        assert out.returncode == 2 and "'tpu'" in out.stderr, (verb, out.stderr)
        assert "Traceback" not in out.stderr and not (tmp_path / "o").exists()
    if not torch.cuda.is_available():
        out = run("track", img, "--point", "0,5,5", "--device", "cuda:0", "--out",
                  tmp_path / "o")
        assert out.returncode == 2 and "no CUDA device here" in out.stderr
    from masklab.cli.options import check_device

    assert check_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert check_device("cpu:0") == "cpu:0"


def test_output_into_a_closed_pipe_is_not_an_error(tmp_path):
    # `masklab weights list | head -1`: the reader leaves early (here `true` reads nothing
    # and is gone before masklab writes); no "internal error", exit 0
    env = {**os.environ, "MASKLAB_HOME": str(tmp_path), "MASKLAB_OFFLINE": "1"}
    p = subprocess.run(["bash", "-c", "set -o pipefail; "
                        f"{sys.executable} -m masklab.cli weights list | true"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stderr == "", p.stderr
