import json

import numpy as np

from masklab.io.images import read_label_png, write_image, write_label_png
from tests.test_cli import run
from tests.video.test_session import iou, moving_squares


def _folder(tmp_path, n=12):
    frames, red, green = moving_squares(n)
    for t, f in enumerate(frames):
        write_image(tmp_path / "clip" / f"{t:05d}.png", f)
    return frames, red, green


def test_track_from_a_first_frame_annotation(tmp_path):
    from masklab.io.coco import load_coco

    _, red, green = _folder(tmp_path)
    first = np.zeros(red[0].shape, np.uint8)
    first[red[0]] = 1
    first[green[0]] = 2
    write_label_png(tmp_path / "first.png", first)
    out = run("track", tmp_path / "clip", "--mask", tmp_path / "first.png", "--out",
              tmp_path / "o")
    assert out.returncode == 0, out.stderr
    assert "tracked 2 object(s) over 12 frames" in out.stdout
    ann = tmp_path / "o" / "Annotations" / "clip"
    assert sorted(p.name for p in ann.iterdir())[:2] == ["00000.png", "00001.png"]
    last = read_label_png(ann / "00011.png")
    assert iou(last == 1, red[11]) >= 0.9 and iou(last == 2, green[11]) >= 0.9
    ds = load_coco(tmp_path / "o" / "tracks.json")
    assert len(ds.images) == 12 and {a["track_id"] for a in ds.annotations} == {1, 2}
    assert json.loads((tmp_path / "o" / "tracks.json").read_text())["videos"][0]["frames"] == 12


def test_track_from_clicks_and_boxes_on_any_frame(tmp_path):
    _, red, green = _folder(tmp_path)
    out = run("-q", "track", tmp_path / "clip", "--box", "6,20,18,44,38", "--box",
              "3,66,4,88,26@5", "--no-overlay", "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    ann = tmp_path / "o" / "Annotations" / "clip"
    for t in (0, 11):
        ids = read_label_png(ann / f"{t:05d}.png")
        assert iou(ids == 1, red[t]) >= 0.85 and iou(ids == 5, green[t]) >= 0.85, t
    assert not (tmp_path / "o" / "overlay.mp4").exists()


def test_track_bad_input_writes_nothing(tmp_path):
    _folder(tmp_path, n=4)
    write_label_png(tmp_path / "small.png", np.ones((5, 5), np.uint8))
    write_label_png(tmp_path / "empty.png", np.zeros((60, 100), np.uint8))
    cases = [(["--mask", tmp_path / "small.png"], "small.png: mask is 5x5, the video 100x60"),
             (["--mask", tmp_path / "empty.png"], "empty.png: the mask is empty"),
             (["--box", "9,1,1,20,20"], "frame 9 is past the end of the 4-frame video"),
             (["--point", "0,500,5"], "outside the 100x60 image"),
             ([], "give a prompt")]
    for args, message in cases:
        out = run("track", tmp_path / "clip", *args, "--out", tmp_path / "o")
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert args == [] or out.stderr.count("\n") == 1  # usage errors are click's
        assert not (tmp_path / "o").exists()
    out = run("track", tmp_path / "nothing", "--box", "0,1,1,5,5", "--out", tmp_path / "o")
    assert out.returncode == 2 and not (tmp_path / "o").exists()


def test_track_unsupervised(tmp_path):
    from tests.video.test_session import panning_clip

    frames, gts = panning_clip()
    for t, f in enumerate(frames):
        write_image(tmp_path / "pan" / f"{t:05d}.png", f)
    out = run("-q", "track", tmp_path / "pan", "--unsupervised", "--no-overlay", "--out",
              tmp_path / "o")
    assert out.returncode == 0, out.stderr
    ids = read_label_png(tmp_path / "o" / "Annotations" / "pan" / "00009.png")
    assert iou(ids == 1, gts[9]) >= 0.7 and ids.max() == 1
    bad = run("track", tmp_path / "pan", "--unsupervised", "--box", "0,1,1,5,5", "--out",
              tmp_path / "o2")
    assert bad.returncode == 2 and "takes no prompt" in bad.stderr


def test_tracks_json_converts_back_to_the_same_davis_annotations(tmp_path):
    _, red, green = _folder(tmp_path, n=5)
    first = np.zeros(red[0].shape, np.uint8)
    first[red[0]] = 3
    first[green[0]] = 7
    write_label_png(tmp_path / "first.png", first)
    assert run("-q", "track", tmp_path / "clip", "--mask", tmp_path / "first.png",
               "--no-overlay", "--out", tmp_path / "o").returncode == 0
    out = run("-q", "convert", tmp_path / "o" / "tracks.json", tmp_path / "d", "--to", "davis")
    assert out.returncode == 0, out.stderr
    for t in range(5):
        a = read_label_png(tmp_path / "o" / "Annotations" / "clip" / f"{t:05d}.png")
        b = read_label_png(tmp_path / "d" / "Annotations" / "480p" / "clip" / f"{t:05d}.png")
        np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0, 3, 7}
