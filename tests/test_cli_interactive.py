import json

import numpy as np

from masklab.io.images import read_image, write_image
from masklab.metrics.interactive import iou
from tests.interactive.test_classical import two_regions
from tests.interactive.test_everything import regions_image
from tests.test_cli import run


def test_prompt_box_points_scribbles_extremes(tmp_path):
    img, gt = two_regions()
    write_image(tmp_path / "a.png", img)
    ys, xs = np.nonzero(gt)
    out = run("-q", "prompt", tmp_path / "a.png", "--box",
              f"{xs.min() - 6},{ys.min() - 6},{xs.max() + 6},{ys.max() + 6}",
              "--point", "85,60", "--point", "5,5,0", "--out", tmp_path / "o1")
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "o1" / "masks.json").read_text())
    assert [m["file"] for m in meta["masks"]] == ["mask_0.png"]
    m = read_image(tmp_path / "o1" / "mask_0.png", mode="gray") > 127
    assert iou(gt, m) >= 0.95 and (tmp_path / "o1" / "overlay.png").is_file()

    paint = np.zeros(gt.shape, np.uint8)
    paint[58:62, 60:110] = 255
    bg = np.zeros(gt.shape, np.uint8)
    bg[2:5, :] = 255
    write_image(tmp_path / "fg.png", paint)
    write_image(tmp_path / "bg.png", bg)
    out = run("-q", "prompt", tmp_path / "a.png", "--scribble", tmp_path / "fg.png",
              "--negative-scribble", tmp_path / "bg.png", "--backend", "graphcut",
              "--out", tmp_path / "o2")
    assert out.returncode == 0, out.stderr
    assert iou(gt, read_image(tmp_path / "o2" / "mask_0.png", mode="gray") > 127) >= 0.95

    ext = [f"{xs.min()},{ys[xs.argmin()]}", f"{xs[ys.argmin()]},{ys.min()}",
           f"{xs.max()},{ys[xs.argmax()]}", f"{xs[ys.argmax()]},{ys.max()}"]
    out = run("-q", "prompt", tmp_path / "a.png", *[a for e in ext for a in ("--extreme", e)],
              "--out", tmp_path / "o3")
    assert out.returncode == 0, out.stderr
    assert iou(gt, read_image(tmp_path / "o3" / "mask_0.png", mode="gray") > 127) >= 0.9

    bad = run("prompt", tmp_path / "a.png", "--out", tmp_path / "o4")
    assert bad.returncode == 2 and "give a prompt" in bad.stderr
    small = np.zeros((5, 5), np.uint8)
    write_image(tmp_path / "small.png", small + 255)
    bad = run("prompt", tmp_path / "a.png", "--scribble", tmp_path / "small.png",
              "--out", tmp_path / "o5")
    assert bad.returncode == 2 and "small.png" in bad.stderr
    assert not (tmp_path / "o5").exists()


def test_everything_writes_coco(tmp_path):
    img, regions = regions_image()
    write_image(tmp_path / "r.png", img)
    out = run("-q", "everything", tmp_path / "r.png", "--min-area", 30, "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    from masklab.io.coco import annotation_rle, load_coco
    from masklab.types import Masks

    ds = load_coco(tmp_path / "o" / "masks.json")
    assert len(ds.annotations) == 5 and all("score" in a for a in ds.annotations)
    dense = Masks.from_rle([annotation_rle(a, 80, 100) for a in ds.annotations],
                           size=(80, 100)).to_dense()
    for r in regions:
        assert max(iou(r, d) for d in dense) >= 0.9


def test_eval_interactive_noc(tmp_path):
    img, gt = two_regions()
    write_image(tmp_path / "img" / "a.png", img)
    write_image(tmp_path / "gt" / "a.png", gt.astype(np.uint8))
    out = run("-q", "eval", "interactive", "--backend", "grabcut", "--images",
              tmp_path / "img", "--masks", tmp_path / "gt", "--max-clicks", 5,
              "--json", tmp_path / "noc.json")
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "noc.json").read_text())
    assert r["samples"] == 1 and 1 <= r["NoC@85"] <= 5 and len(r["mIoU_per_click"]) == 5
    assert "NoC@90" in out.stdout


def test_prompt_with_a_bf16_sam_decoder(tmp_path):
    import pytest

    pytest.importorskip("transformers")
    from tests.interactive.test_sam import _tiny_family

    _tiny_family("sam2", tmp_path / "sam2")
    img = np.random.default_rng(3).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    write_image(tmp_path / "a.png", img)
    outs = {}
    for precision in ("fp32", "bf16"):
        out = run("-q", "prompt", tmp_path / "a.png", "--point", "30,40", "--backend",
                  tmp_path / "sam2", "--precision", precision, "--out", tmp_path / precision)
        assert out.returncode == 0, out.stderr
        outs[precision] = read_image(tmp_path / precision / "mask_0.png", mode="gray") > 127
    assert iou(outs["fp32"], outs["bf16"]) >= 0.95
    bad = run("prompt", tmp_path / "a.png", "--point", "30,40", "--precision", "bf16",
              "--out", tmp_path / "x")
    assert bad.returncode == 2 and "SAM backends" in bad.stderr


def test_prompt_outside_the_image(tmp_path):
    img, gt = two_regions()  # 160x120
    h, w = gt.shape
    write_image(tmp_path / "a.png", img)
    for args in (["--box", f"{w + 10},{h + 10},{w + 400},{h + 400}"],
                 ["--box", f"-50,-50,-1,{h}"],
                 ["--point", f"{w + 1},5"],
                 ["--extreme", "10,10", "--extreme", "20,5", "--extreme", "30,10",
                  "--extreme", f"20,{h + 100}"]):
        bad = run("prompt", tmp_path / "a.png", *args, "--out", tmp_path / "o")
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.count("\n") == 1 and "a.png" in bad.stderr
        assert f"outside the {w}x{h} image" in bad.stderr
        assert not (tmp_path / "o").exists()
    ys, xs = np.nonzero(gt)
    box = [xs.min() - 6, ys.min() - 6, w + 300, ys.max() + 6]
    out = run("prompt", tmp_path / "a.png", "--box", ",".join(map(str, box)), "--out",
              tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert (f"clipped to {box[0]},{box[1]},{w},{box[3]}" in out.stderr
            and "reaches outside" in out.stderr)
    m = read_image(tmp_path / "o" / "mask_0.png", mode="gray") > 127
    assert iou(gt, m) >= 0.9
