import json

import numpy as np
import pytest
from click.testing import CliRunner

from masklab.cli import main
from masklab.grounding.detectors import Detections
from masklab.grounding.label import LabelSettings
from masklab.grounding.video import label_video
from masklab.io.images import read_label_png
from tests.conftest import shared_path
from tests.video.test_session import iou

COLOURS = {"cat": (220, 40, 40), "dog": (40, 40, 220)}


class _ColourDetector:
    """Boxes of the pixels of one colour per class (red: cat, blue: dog), one per blob."""

    name = "colour"

    def __init__(self):
        self.calls = 0

    def detect(self, image, classes):
        import cv2

        self.calls += 1
        boxes, labels = [], []
        for k, c in enumerate(classes):
            hit = (np.abs(image.astype(int) - COLOURS[c]).sum(-1) < 60).astype(np.uint8)
            _, _, stats, _ = cv2.connectedComponentsWithStats(hit)
            for s in stats[1:]:
                if s[4] >= 20:
                    boxes.append([s[0], s[1], s[0] + s[2], s[1] + s[3]])
                    labels.append(k)
        return Detections(np.array(boxes, np.float64).reshape(-1, 4), np.full(len(boxes), 0.9),
                          np.array(labels, np.int64), list(classes))


def _clip(n=24):
    """A cat square moving right from frame 0; a dog square entering on frame 12."""
    rng = np.random.default_rng(0)
    bg = rng.integers(90, 150, (60, 120, 3)).astype(np.uint8)
    frames, cats, dogs = [], [], []
    for t in range(n):
        f = bg.copy()
        cat = np.zeros((60, 120), bool)
        cat[10:26, 5 + 2 * t:21 + 2 * t] = True
        dog = np.zeros((60, 120), bool)
        if t >= 12:
            dog[35:51, 100 - 2 * (t - 12):116 - 2 * (t - 12)] = True
        f[cat] = COLOURS["cat"]
        f[dog] = COLOURS["dog"]
        frames.append(f)
        cats.append(cat)
        dogs.append(dog)
    return frames, cats, dogs


def test_label_video_one_track_id_per_object(tmp_path):
    frames, cats, dogs = _clip()
    det = _ColourDetector()
    settings = LabelSettings(classes=["cat", "dog"], detector="colour", segmenter="box")
    r = label_video(frames, tmp_path / "out", settings, detector=det, key_every=6,
                    quiet=True, overlay=False)
    assert det.calls == 4 and r.key_frames == 4 and r.frames == 24  # frames 0, 6, 12, 18
    assert r.tracks == 2
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    assert len(coco["images"]) == 24
    by_track = {}
    for a in coco["annotations"]:
        by_track.setdefault(a["track_id"], set()).add(a["category_id"])
    assert by_track == {1: {1}, 2: {2}}  # one id per object, one class per id
    tracks = json.loads((tmp_path / "out" / "tracks.json").read_text())["tracks"]
    assert [(t["category"], t["first_frame"], t["confirmed_on"]) for t in tracks] == \
        [("cat", 0, [0, 6, 12, 18]), ("dog", 12, [12, 18])]
    for t in range(24):
        ids = read_label_png(tmp_path / "out" / "Annotations" / "video" / f"{t:05d}.png")
        assert iou(ids == 1, cats[t]) > 0.8, t
        if t < 12:
            assert not (ids == 2).any()  # a track starts where it was first detected
        else:
            assert iou(ids == 2, dogs[t]) > 0.8, t


def test_label_video_with_nothing_found_is_a_complete_empty_dataset(tmp_path):
    frames = [np.full((30, 40, 3), 120, np.uint8)] * 5
    settings = LabelSettings(classes=["cat"], detector="colour", segmenter="box")
    r = label_video(frames, tmp_path / "out", settings, detector=_ColourDetector(),
                    key_every=2, quiet=True, overlay=False)
    assert (r.tracks, r.annotations, r.key_frames) == (0, 0, 3)
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len(coco["images"]) == 5 and coco["categories"] == [{"id": 1, "name": "cat"}]
    pngs = sorted((tmp_path / "out" / "Annotations" / "video").glob("*.png"))
    assert len(pngs) == 5 and not read_label_png(pngs[0]).any()


def test_label_video_cli_on_an_mp4(tmp_path):
    pytest.importorskip("av")
    from masklab.io.video import VideoWriter
    from tests.grounding import tiny

    frames, _, _ = _clip(8)
    w = VideoWriter(tmp_path / "clip.mp4", fps=8)
    for f in frames:
        w.write(f)
    w.close()
    tiny.grounding_dino(tmp_path / "gd")
    args = ["--quiet", "label", str(tmp_path / "clip.mp4"), "--classes", "cat,dog",
            "--detector", str(tmp_path / "gd"), "--segmenter", "box", "--box-threshold",
            "0.2", "--key-every", "4", "--out", str(tmp_path / "out")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "out" / "annotations.json").read_text())
    assert len(coco["images"]) == 8 and coco["images"][0]["file_name"] == "clip/00000.jpg"
    tracks = json.loads((tmp_path / "out" / "tracks.json").read_text())
    assert tracks["key_frames"] == [0, 4] and tracks["settings"]["tracker"] == "flow"
    assert {a["track_id"] for a in coco["annotations"]} == \
        {t["track_id"] for t in tracks["tracks"]}
    assert (tmp_path / "out" / "overlay.mp4").is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "not empty" in again.output
    for bad, why in [(["--key-every", "0"], "at least 1"), (["--classes", "auto"], "classes")]:
        r = CliRunner().invoke(main, [*args[1:-1], str(tmp_path / "o2"), *bad])
        assert r.exit_code == 2 and why in r.output, r.output


def test_label_video_on_real_davis_frames(tmp_path):
    """DAVIS ``dog`` (first 15 frames): a detector that sees the true box on each key frame,
    GrabCut masks, the flow tracker between: mean J against the ground truth ≥ 0.7."""
    root = shared_path("data", "davis2016")
    from masklab.io.images import read_image

    seq = sorted((root / "JPEGImages" / "480p" / "dog").glob("*.jpg"))[:15]
    gts = [read_label_png(root / "Annotations" / "480p" / "dog" / f"{p.stem}.png") > 0
           for p in seq]
    index = {}

    class TrueBox:
        def detect(self, image, classes):
            g = index[image.tobytes()[:4096]]
            ys, xs = np.nonzero(g)
            return Detections(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
                                       np.float64), np.ones(1), np.zeros(1, np.int64),
                              list(classes))

    frames = [read_image(p) for p in seq]
    for f, g in zip(frames, gts, strict=True):
        index[f.tobytes()[:4096]] = g
    settings = LabelSettings(classes=["dog"], detector="true-box", segmenter="grabcut")
    r = label_video(frames, tmp_path / "out", settings, detector=TrueBox(), key_every=7,
                    quiet=True, overlay=False)
    assert r.tracks == 1
    js = [iou(read_label_png(tmp_path / "out" / "Annotations" / "video" / f"{t:05d}.png")
               == 1, gts[t]) for t in range(15)]
    assert np.mean(js) >= 0.7, js
