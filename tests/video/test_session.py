import numpy as np
import pytest

from masklab.errors import InputError
from masklab.video.session import VideoSession
from tests.conftest import shared_path


def moving_squares(n=20, h=60, w=100):
    """A red square moving right 2 px a frame and a green one moving down 1 px a frame,
    on a fixed textured background; and their true masks."""
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
    frames, red, green = [], [], []
    for t in range(n):
        f = bg.copy()
        r = np.zeros((h, w), bool)
        r[20:36, 10 + 2 * t:26 + 2 * t] = True
        g = np.zeros((h, w), bool)
        g[5 + t:19 + t, 70:84] = True
        f[r] = (220, 60, 60)
        f[g] = (60, 220, 60)
        frames.append(f)
        red.append(r)
        green.append(g)
    return frames, red, green


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


class Counting:
    """Wraps a backend and counts the frames it steps each object to."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []

    def appearance(self, image, mask):
        return self.backend.appearance(image, mask)

    def step(self, previous, image, masks, *rest):
        self.calls += [(id(image), k) for k in masks]
        return self.backend.step(previous, image, masks, *rest)


def test_mask_prompt_in_the_middle_propagates_both_ways():
    frames, red, _ = moving_squares()
    s = VideoSession(frames)
    s.add_prompt(10, 1, mask=red[10])
    out = list(s.propagate())
    assert [t for t, _ in out] == list(range(20))  # every frame once, in order
    for t, m in out:
        assert m.labels.tolist() == [1]
        assert iou(m.to_dense()[0], red[t]) >= 0.97, t
    fwd = VideoSession(frames)
    fwd.add_prompt(10, 1, mask=red[10])
    assert [t for t, _ in fwd.propagate(direction="forward")] == list(range(10, 20))
    assert [t for t, _ in fwd.propagate(start=3, end=6, direction="both")] == [3, 4, 5, 6]


def test_two_objects_box_prompt_and_label_map():
    frames, red, green = moving_squares()
    s = VideoSession(frames)
    s.add_prompt(0, 1, mask=red[0])
    first = s.add_prompt(0, 2, box=[66, 1, 88, 23])  # GrabCut turns the box into a mask
    assert iou(first.to_dense()[0], green[0]) >= 0.9
    res = dict(s.propagate())
    assert res[19].labels.tolist() == [1, 2]
    assert iou(res[19].to_dense()[0], red[19]) >= 0.9
    assert iou(res[19].to_dense()[1], green[19]) >= 0.9
    ids = s.label_map(19)
    assert set(np.unique(ids)) == {0, 1, 2} and (ids == 2).sum() == res[19].area[1]


def test_a_correction_recomputes_only_between_neighbouring_prompts():
    frames, red, _ = moving_squares()
    s = VideoSession(frames)
    s.backend = counter = Counting(s.backend)
    s.add_prompt(5, 1, mask=red[5])
    list(s.propagate())
    assert len(counter.calls) == 19  # 5 frames back, 14 forward
    counter.calls.clear()
    list(s.propagate())
    assert counter.calls == []  # nothing changed, nothing recomputed
    s.add_prompt(15, 1, mask=red[15])
    res = dict(s.propagate())
    # frames 11..14 now come backward from 15, 16..19 forward from it; 0..10 are kept
    assert len(counter.calls) == 8
    assert all(iou(res[t].to_dense()[0], red[t]) >= 0.97 for t in range(20))
    counter.calls.clear()
    assert s.undo() and sorted(s._anchors[1]) == [5]
    list(s.propagate())
    assert len(counter.calls) == 19
    assert s.redo() and sorted(s._anchors[1]) == [5, 15]
    assert not s.redo()


def test_objects_added_and_removed_after_tracking():
    frames, red, green = moving_squares()
    s = VideoSession(frames)
    s.add_prompt(0, 1, mask=red[0])
    list(s.propagate())
    s.add_prompt(8, 2, mask=green[8])  # a new object mid-way
    res = dict(s.propagate())
    assert res[3].labels.tolist() == [1, 2] and iou(res[3].to_dense()[1], green[3]) >= 0.97
    s.remove_object(1)
    assert s.objects == [2] and dict(s.propagate())[19].labels.tolist() == [2]


def test_bad_prompts():
    frames, red, _ = moving_squares(n=5)
    s = VideoSession(frames)
    with pytest.raises(InputError, match="no object has a prompt"):
        list(s.propagate())
    with pytest.raises(InputError, match="frame 5 is past the end of the 5-frame video"):
        s.add_prompt(5, 1, mask=red[0])
    with pytest.raises(InputError, match="mask is 10x10, the video 100x60"):
        s.add_prompt(0, 1, mask=np.ones((10, 10), bool))
    with pytest.raises(InputError, match="mask of object 1 on frame 0 is empty"):
        s.add_prompt(0, 1, mask=np.zeros((60, 100), bool))
    with pytest.raises(InputError, match="unknown object id 3"):
        s.remove_object(3)
    with pytest.raises(ValueError, match="outside the 100x60 image"):
        s.add_prompt(0, 1, box=[200, 0, 300, 10])
    assert s.objects == []  # nothing half-added


def test_flow_on_real_davis_frames():
    root = shared_path("data", "davis2016")
    from masklab.io.images import read_image, read_label_png

    seq = sorted((root / "JPEGImages" / "480p" / "dog").glob("*.jpg"))[:8]
    gts = [read_label_png(root / "Annotations" / "480p" / "dog" / f"{p.stem}.png") > 0
           for p in seq]
    s = VideoSession([read_image(p) for p in seq])
    s.add_prompt(0, 1, mask=gts[0])
    js = [iou(m.to_dense()[0], gts[t]) for t, m in s.propagate() if t]
    assert min(js) >= 0.7 and np.mean(js) >= 0.8, js


def test_an_object_that_leaves_and_comes_back_keeps_its_id():
    rng = np.random.default_rng(1)
    bg = rng.integers(0, 80, (60, 100, 3)).astype(np.uint8)
    xs = [10, 30, 50, 70, 90, 110, 130, 130, 110, 90, 70, 50]  # out past x=100, back
    frames, gts = [], []
    for x in xs:
        f = bg.copy()
        g = np.zeros((60, 100), bool)
        g[20:36, max(0, x):max(0, x + 16)] = True
        f[g] = (220, 60, 60)
        frames.append(f)
        gts.append(g)
    s = VideoSession(frames)
    s.add_prompt(0, 1, mask=gts[0])
    res = {t: m.to_dense()[0] for t, m in s.propagate()}
    assert not res[6].any() and not res[7].any()  # gone: empty, but the track is kept
    assert not res[8].any()
    js = [iou(res[t], gts[t]) for t in (9, 10, 11)]  # back under id 1, 20 px a frame
    assert min(js) >= 0.8, js  # as good as before it left (0.84 at 20 px a frame)


def panning_clip(n=10, moving=True):
    """A textured scene panned 2 px a frame to the left, with (or without) a square that moves
    right 3 px a frame against it."""
    rng = np.random.default_rng(2)
    world = rng.integers(0, 255, (70, 160, 3)).astype(np.uint8)
    world = np.asarray(__import__("cv2").GaussianBlur(world, (0, 0), 1.5))
    frames, gts = [], []
    for t in range(n):
        f = world[:, 2 * t:2 * t + 100].copy()
        g = np.zeros((70, 100), bool)
        if moving:
            g[25:45, 20 + 3 * t:40 + 3 * t] = True
            f[g] = np.array([230, 200, 30], np.uint8) + rng.integers(0, 20, (g.sum(), 3),
                                                                       dtype=np.uint8)
        frames.append(f)
        gts.append(g)
    return frames, gts


def test_discover_finds_what_moves_against_the_camera():
    frames, gts = panning_clip()
    s = VideoSession(frames)
    ids = s.discover(max_objects=5)
    assert ids == [1]
    res = dict(s.propagate())
    assert all(iou(res[t].to_dense()[0], gts[t]) >= 0.7 for t in range(10))
    still, _ = panning_clip(moving=False)
    assert VideoSession(still).discover() == []  # the camera's own motion is no object
