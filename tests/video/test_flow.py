"""The flow backend's cues, on synthetic frames whose answer is known: the forward–backward
check finds the pixels a moving object uncovers, the motion cue tells the object's motion
from its surroundings', and together they drop background that a mask took in by mistake."""

import numpy as np

from masklab.video.flow import FlowTracker, motion_log_ratio
from masklab.video.session import VideoSession

H, W, SIDE, SPEED = 120, 160, 36, 3


def _texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Grey, smooth-ish noise: the flow can follow it, and object and background share the
    same colours (the colour cue can tell them apart by nothing)."""
    import cv2

    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 1.5)
    t = cv2.normalize(t, None, 30, 225, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(t[..., None], 3, axis=2)


BG, OBJ = _texture(0), _texture(1, SIDE, SIDE)


def frame(t: int, speed: int = SPEED) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: the textured square at x = 30 + speed·t over the still background."""
    img = BG.copy()
    x0, y0 = 30 + speed * t, 40
    img[y0:y0 + SIDE, x0:x0 + SIDE] = OBJ
    m = np.zeros((H, W), bool)
    m[y0:y0 + SIDE, x0:x0 + SIDE] = True
    return img, m


def test_forward_backward_check_flags_what_the_object_uncovers():
    tr = FlowTracker()
    (a, ma), (b, mb) = frame(0, 8), frame(1, 8)  # a strip wider than DIS's 8 px patches
    ok = tr.consistent(tr.flow(b, a), tr.flow(a, b))
    uncovered = ma & ~mb  # the strip behind the square: hidden in the previous frame
    interior = np.zeros_like(mb)
    interior[45:70, 45:65] = True  # well inside the square in both frames
    far = np.zeros_like(mb)
    far[:25] = True  # background far from the square
    assert (~ok[uncovered]).mean() > 0.8
    assert ok[interior].mean() > 0.95 and ok[far].mean() > 0.95


def test_motion_cue_separates_the_objects_motion_from_the_backgrounds():
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 0.2, (H, W, 2)).astype(np.float32)
    _, m = frame(0)
    flow[m] += (-SPEED, 0)  # backward flow: the object came from SPEED px to the left
    llr = motion_log_ratio(flow, m)
    assert llr[m].mean() > 4 and llr[~m].mean() < -4  # clipped at ±5
    assert np.allclose(motion_log_ratio(flow, m & False), 0)  # nothing to measure


def test_background_taken_in_by_the_prompt_is_dropped_as_it_stays_behind():
    """The first mask holds the square and a still patch of background beside it (same
    colours): with the motion cue the patch is left behind within a few frames; with the
    flow and colour cues alone it stays in the mask for good."""
    frames = [frame(t)[0] for t in range(12)]
    truth = [frame(t)[1] for t in range(12)]
    leak = np.zeros((H, W), bool)
    leak[40:76, 10:30] = True  # still background, touching the square's left side

    def track(**options):
        s = VideoSession(frames, **options)
        s.add_prompt(0, 1, mask=truth[0] | leak)
        return [m.to_dense()[0] for _, m in s.propagate()]

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    with_motion = track()
    without = track(motion_weight=0.0)
    assert iou(with_motion[-1], truth[-1]) > 0.8
    assert with_motion[-1][leak & ~truth[-1]].mean() < 0.1
    assert without[-1][leak & ~truth[-1]].mean() > 0.5  # the cue is what removes it
