import numpy as np
import pytest

from masklab.io.images import read_image, write_image
from tests.matting.test_matting import soft_disk, synthetic
from tests.test_cli import run


def test_matte_from_trimap_mask_and_point_then_composite(tmp_path):
    image, alpha, _, _ = synthetic()
    write_image(tmp_path / "a.png", np.round(image * 255).astype(np.uint8))
    write_image(tmp_path / "mask.png", ((alpha > 0.5) * 255).astype(np.uint8))
    out = run("-q", "matte", tmp_path / "a.png", "--mask", tmp_path / "mask.png", "--band", 12,
              "--new-background", "0,255,0", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    got = read_image(tmp_path / "m" / "alpha.png", mode="gray") / 255.0
    assert np.abs(got - alpha).max() < 0.03
    fg = read_image(tmp_path / "m" / "foreground.png", mode="rgba")
    assert fg.shape == (*alpha.shape, 4)
    comp = read_image(tmp_path / "m" / "composite.jpg")
    assert comp[2, 2, 1] > 200 and comp[2, 2, 0] < 60  # the new green background
    tri = tmp_path / "m" / "trimap.png"
    again = run("-q", "matte", tmp_path / "a.png", "--trimap", tri, "--solver", "knn",
                "--out", tmp_path / "t")
    assert again.returncode == 0, again.stderr
    pt = run("-q", "matte", tmp_path / "a.png", "--point", "50,40", "--out", tmp_path / "p")
    assert pt.returncode == 0, pt.stderr
    assert (read_image(tmp_path / "p" / "alpha.png", mode="gray")[40, 50]) > 200

    c = run("composite", tmp_path / "a.png", "--alpha", tmp_path / "m" / "alpha.png",
            "--background", "#0000ff", "--out", tmp_path / "c.png")
    assert c.returncode == 0, c.stderr
    assert read_image(tmp_path / "c.png")[2, 2, 2] > 240

    both = run("matte", tmp_path / "a.png", "--mask", tmp_path / "mask.png", "--point", "1,1",
               "--out", tmp_path / "x")
    assert both.returncode == 2 and "exactly one" in both.stderr
    write_image(tmp_path / "small.png", np.zeros((5, 5), np.uint8))
    bad = run("composite", tmp_path / "a.png", "--alpha", tmp_path / "small.png",
              "--background", "blur", "--out", tmp_path / "c2.png")
    assert bad.returncode == 2 and "small.png" in bad.stderr
    assert not (tmp_path / "c2.png").exists()
    assert soft_disk().shape == alpha.shape


def test_matte_from_a_clean_plate_coarse_to_fine_and_errors(tmp_path):
    from tests.matting.test_matting import _plate_scene

    image, plate, alpha = _plate_scene(shift=(1, 1))
    write_image(tmp_path / "a.png", np.round(image * 255).astype(np.uint8))
    write_image(tmp_path / "plate.png", np.round(plate * 255).astype(np.uint8))
    out = run("-q", "matte", tmp_path / "a.png", "--background", tmp_path / "plate.png",
              "--new-background", "blur", "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    got = read_image(tmp_path / "m" / "alpha.png", mode="gray") / 255.0
    assert np.abs(got - alpha).mean() < 0.01
    c2f = run("-q", "matte", tmp_path / "a.png", "--background", tmp_path / "plate.png",
              "--coarse-to-fine", "--refine", "0.5", "--out", tmp_path / "c")
    assert c2f.returncode == 0, c2f.stderr
    assert (read_image(tmp_path / "c" / "alpha.png", mode="gray") / 255.0).shape == alpha.shape
    same = run("matte", tmp_path / "plate.png", "--background", tmp_path / "plate.png",
               "--out", tmp_path / "e")
    assert same.returncode == 2 and "no subject" in same.stderr
    assert not (tmp_path / "e").exists()
    noweights = run("matte", tmp_path / "a.png", "--background", tmp_path / "plate.png",
                  "--solver", "vitmatte", "--weights", tmp_path / "nothing", "--out",
                  tmp_path / "v")
    assert noweights.returncode != 0 and "nothing" in noweights.stderr


def test_matte_video_with_a_plate(tmp_path):
    pytest.importorskip("av")
    from masklab.io.video import VideoWriter, read_video
    from tests.matting.test_matting import _plate_scene

    image, plate, _ = _plate_scene(64, 96)
    with VideoWriter(tmp_path / "v.mp4", 8, crf=0) as w:
        for _ in range(3):
            w.write(np.round(image * 255).astype(np.uint8))
    write_image(tmp_path / "plate.png", np.round(plate * 255).astype(np.uint8))
    out = run("-q", "matte", tmp_path / "v.mp4", "--background", tmp_path / "plate.png",
              "--new-background", "0,0,255", "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    frames = list(read_video(tmp_path / "o" / "composite.mp4"))
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    assert frames[0][2, 2, 2] > 200  # blue where the plate was
    need = run("matte", tmp_path / "v.mp4", "--mask", tmp_path / "plate.png", "--out",
               tmp_path / "x")
    assert need.returncode == 2 and "clean plate" in need.stderr
