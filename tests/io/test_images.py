import os

import numpy as np
import pytest
from PIL import Image

from masklab.errors import InputError
from masklab.io import (
    atomic_open,
    find_images,
    image_size,
    read_image,
    read_label_png,
    write_image,
    write_json,
    write_label_png,
)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # left strip white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    assert image_size(tmp_path / "r.jpg") == (40, 20)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the strip is now on top


def test_modes_rgba_gray_and_16bit(tmp_path):
    rgba = np.dstack([np.full((4, 5, 3), 100, np.uint8), np.full((4, 5), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png", "rgba")[0, 0].tolist() == [100, 100, 100, 7]
    assert read_image(tmp_path / "a.png").shape == (4, 5, 3)
    g16 = np.array([[0, 65535], [257, 32896]], np.uint16)
    write_image(tmp_path / "g.png", g16)
    assert read_image(tmp_path / "g.png", "unchanged").dtype == np.uint16
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "unchanged"), g16)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "gray"), [[0, 255], [1, 128]])
    assert read_image(tmp_path / "g.png").shape == (2, 2, 3)


def test_pixel_limit_and_bad_files(tmp_path, monkeypatch):
    write_image(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(InputError, match=r"big.png: image is 100x100 = 10000 pixels"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    monkeypatch.setenv("MASKLAB_MAX_PIXELS", "999")
    with pytest.raises(InputError, match="over the limit of 999"):
        read_image(tmp_path / "big.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="junk.png: not a readable image"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(InputError, match="no such image file"):
        read_image(tmp_path / "missing.png")


def test_label_png_palette_plain_and_16bit(tmp_path):
    lab = np.array([[0, 1, 2], [255, 3, 0]], np.uint8)
    write_label_png(tmp_path / "p.png", lab)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), lab)
    write_label_png(tmp_path / "g.png", lab, palette=False)
    assert Image.open(tmp_path / "g.png").mode == "L"
    np.testing.assert_array_equal(read_label_png(tmp_path / "g.png"), lab)
    big = np.array([[0, 300], [65535, 1]])
    write_label_png(tmp_path / "b.png", big)
    np.testing.assert_array_equal(read_label_png(tmp_path / "b.png"), big)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="rgb.png: label PNG must be palette"):
        read_label_png(tmp_path / "rgb.png")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(ValueError):
        write_json(target, {"a": float("nan")})  # not valid JSON: fails mid-write
    assert target.read_text() == '{"a": 1}'
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == '{"a": 1}'
    assert os.listdir(tmp_path) == ["out.json"]  # no temp files left behind


def test_find_images(tmp_path):
    for name in ("b.png", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_images([tmp_path])] == ["a.jpg", "b.png"]
    assert [p.name for p in find_images([str(tmp_path / "*.png")])] == ["b.png"]
    with pytest.raises(InputError, match="no such file"):
        find_images([tmp_path / "nope*.png"])
