import numpy as np
import pytest

from masklab.matting import (
    closed_form_alpha,
    composite,
    estimate_foreground,
    knn_alpha,
    matte,
    rgba,
    trimap_from_mask,
    trimap_from_scribbles,
)
from masklab.metrics.matting import sad

F_COLOUR = np.array([0.9, 0.25, 0.1])
B_COLOUR = np.array([0.1, 0.35, 0.8])


def soft_disk(h=80, w=100, r=22, soft=8.0):
    """An analytic alpha: 1 inside radius r, falling linearly to 0 over ``soft`` pixels."""
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot(xx - w / 2, yy - h / 2)
    return np.clip((r + soft - d) / soft, 0.0, 1.0)


def synthetic(h=80, w=100, textured=False, seed=0):
    alpha = soft_disk(h, w)
    rng = np.random.default_rng(seed)
    f = np.broadcast_to(F_COLOUR, (h, w, 3)).copy()
    b = np.broadcast_to(B_COLOUR, (h, w, 3)).copy()
    if textured:  # smooth colour variation, still locally near-constant
        xx = np.mgrid[:h, :w][1]
        b = b + 0.08 * np.sin(xx / 9.0)[..., None] * rng.uniform(0.5, 1, 3)
    image = alpha[..., None] * f + (1 - alpha[..., None]) * b
    return image, alpha, f, b


def test_trimaps():
    m = np.zeros((50, 60), bool)
    m[10:40, 15:45] = True
    t = trimap_from_mask(m, band=3)
    assert t[25, 30] == 255 and t[0, 0] == 0 and t[10, 30] == 128 and t[7, 30] == 128
    assert t[6, 30] == 0 and t[13, 30] == 255
    band = (t == 128).sum()
    assert trimap_from_mask(m, band=6).__eq__(128).sum() > band
    auto = trimap_from_mask(m)  # proportional: 0.03 * sqrt(900) ~ 1 pixel
    assert (auto == 128).any()
    from masklab.types.prompts import Scribble

    s = trimap_from_scribbles((50, 60), [Scribble([[20, 25], [40, 25]], width=3)],
                              [np.eye(50, 60, dtype=bool)])
    assert s[25, 30] == 255 and s[0, 0] == 0 and s[45, 5] == 128


@pytest.mark.parametrize("textured", [False, True])
def test_closed_form_recovers_an_analytic_alpha(textured):
    image, alpha, _, _ = synthetic(textured=textured)
    tri = trimap_from_mask(alpha > 0.5, band=12)
    assert ((tri == 128) | (alpha == (tri / 255))).all()  # the soft ramp is all unknown
    est = closed_form_alpha(image, tri)
    unknown = tri == 128
    mean_err = np.abs(est - alpha)[unknown].mean()  # SAD per unknown pixel
    assert mean_err <= (1e-4 if not textured else 0.01)
    assert np.abs(est - alpha).max() < (1e-3 if not textured else 0.1)
    assert sad(est, alpha, trimap=tri) == pytest.approx(np.abs(est - alpha)[unknown].sum()
                                                         / 1000)


def test_foreground_composite_and_rgba():
    image, alpha, f, b = synthetic()
    fg = estimate_foreground(image, alpha)
    where = alpha > 0.05
    assert np.abs(fg[where] - F_COLOUR).max() < 0.02  # no background bleeding into F
    out = composite(fg, alpha, (0, 255, 0))
    expect = alpha[..., None] * fg + (1 - alpha[..., None]) * np.array([0, 1.0, 0])
    assert np.abs(out.astype(float) - np.round(expect * 255)).max() <= 1
    # compositing the true F and B reproduces the image exactly (to rounding)
    same = composite(f, alpha, (b * 255).round().astype(np.uint8))
    assert np.abs(same.astype(float) - image * 255).max() <= 1.0
    cut = rgba(fg, alpha)
    assert cut.shape == (*alpha.shape, 4) and cut[40, 50, 3] == 255 and cut[0, 0, 3] == 0
    blur = composite(fg, alpha, "blur")
    assert blur.shape == image.shape
    a2, f2 = matte((image * 255).round().astype(np.uint8), trimap_from_mask(alpha > 0.5, 12))
    assert np.abs(a2 - alpha).max() < 0.02 and f2.shape == image.shape
    with pytest.raises(ValueError, match="solver"):
        matte(image, trimap_from_mask(alpha > 0.5, 12), solver="magic")


def test_knn_matting_recovers_an_analytic_alpha():
    image, alpha, _, _ = synthetic()
    tri = trimap_from_mask(alpha > 0.5, band=12)
    est = knn_alpha(image, tri)
    unknown = tri == 128
    # KNN's binary affinities diffuse a linear ramp a little (pymatting: 0.066 as well)
    assert np.abs(est - alpha)[unknown].mean() <= 0.08
    pymatting = pytest.importorskip("pymatting")
    ref = pymatting.estimate_alpha_knn(image, tri / 255.0)  # soft constraints, lambda 100
    assert np.abs(est - ref).max() < 0.01
    assert (est[tri == 255] == 1).all() and (est[tri == 0] == 0).all()
    a2, _ = matte(image, tri, solver="knn")
    assert np.array_equal(a2, est)



def _plate_scene(h=120, w=160, shift=(1, 0), noise=2 / 255, seed=0):
    """A textured background, its clean plate shot again with camera jitter and noise, and
    an analytic soft disk composited over it."""
    rng = np.random.default_rng(seed)
    import cv2

    big = cv2.GaussianBlur(rng.uniform(0, 1, (h + 8, w + 8, 3)), (0, 0), 3)
    big = 0.2 + 0.6 * (big - big.min()) / (big.max() - big.min())
    dy, dx = shift
    b_image = big[4:4 + h, 4:4 + w]
    b_plate = big[4 + dy:4 + dy + h, 4 + dx:4 + dx + w]
    alpha = soft_disk(h, w, r=30, soft=6.0)
    f = np.broadcast_to(F_COLOUR, (h, w, 3))
    image = alpha[..., None] * f + (1 - alpha[..., None]) * b_image
    image = np.clip(image + rng.normal(0, noise, image.shape), 0, 1)
    plate = np.clip(b_plate + rng.normal(0, noise, b_plate.shape), 0, 1)
    return image, plate, alpha


@pytest.mark.parametrize("shift", [(0, 0), (1, -1), (3, 2)])
def test_background_matting_from_a_clean_plate(shift):
    from masklab.matting import background_matte, trimap_from_plate

    image, plate, alpha = _plate_scene(shift=shift)
    tri, _ = trimap_from_plate(image, plate)
    # the trimap never claims a known value that is wrong, and its band holds the soft edge
    assert (alpha[tri == 255] == 1).all() and (alpha[tri == 0] < 0.02).all()
    assert (tri[(alpha > 0.05) & (alpha < 0.95)] == 128).mean() > 0.95
    est, tri2 = background_matte(image, plate)
    assert (tri2 == tri).all()
    err = sad(est, alpha, tri)  # /1000 over the unknown band
    ramp = np.abs(alpha - (alpha > 0.5))[tri == 128].sum() / 1000  # a hard mask's error
    assert err < 0.35 * ramp, (err, ramp)


def test_background_matting_with_no_subject_is_empty():
    from masklab.matting import background_matte

    _, plate, _ = _plate_scene()
    again = np.clip(plate + np.random.default_rng(1).normal(0, 2 / 255, plate.shape), 0, 1)
    alpha, tri = background_matte(again, plate)
    assert not alpha.any() and (tri == 0).all()


def test_video_background_replacement_is_streamed_and_stable(tmp_path):
    pytest.importorskip("av")
    from masklab.io.video import VideoWriter, read_video
    from masklab.matting import matte_video

    h, w = 64, 96
    _, plate, _ = _plate_scene(h, w, shift=(0, 0))
    rng = np.random.default_rng(3)
    frames, alphas = [], []
    for t in range(6):  # the disk moves right; every frame has fresh noise
        yy, xx = np.mgrid[:h, :w]
        alpha = np.clip((18 + 4 - np.hypot(xx - 30 - 4 * t, yy - 32)) / 4, 0, 1)
        img = alpha[..., None] * F_COLOUR + (1 - alpha[..., None]) * plate
        frames.append(np.clip(img + rng.normal(0, 2 / 255, img.shape), 0, 1))
        alphas.append(alpha)
    src = tmp_path / "in.mp4"
    with VideoWriter(src, 10, crf=0) as wr:
        for f in frames:
            wr.write(np.round(f * 255).astype(np.uint8))
    info = matte_video(src, np.round(plate * 255).astype(np.uint8), tmp_path / "out",
                       new_background=(0, 255, 0), smoothing=0.0)
    assert info["frames"] == 6 and info["fps"] == 10
    got = [f[..., 0] / 255.0 for f in read_video(tmp_path / "out" / "alpha.mp4")]
    comp = list(read_video(tmp_path / "out" / "composite.mp4"))
    assert len(got) == len(comp) == 6 and got[0].shape == (h, w)
    for a, ref in zip(got, alphas, strict=True):  # lossy H.264 alpha: a loose bound
        assert np.abs(a - ref).mean() < 0.03
    # far from the subject the composite shows the new green background
    assert comp[0][2, w - 3, 1] > 200 and comp[0][2, w - 3, 0] < 60
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


def test_colour_line_residual_is_the_matting_laplacian_applied():
    from masklab.matting.closed_form import matting_laplacian
    from masklab.matting.coarse_to_fine import colour_line_residual

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (12, 15, 3))
    alpha = rng.uniform(0, 1, (12, 15))
    h, w = alpha.shape
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True
    lap = matting_laplacian(img, np.flatnonzero(inner), eps=1e-3)
    ref = np.abs(lap @ alpha.ravel()).reshape(h, w) / 9
    ours = colour_line_residual(img, alpha, eps=1e-3)
    # pixels whose nine windows all lie inside the image (the reflected border differs)
    np.testing.assert_allclose(ours[2:-2, 2:-2], ref[2:-2, 2:-2], atol=2e-4)


def test_coarse_to_fine_is_close_to_the_full_resolution_solve():
    import cv2

    from masklab.matting import coarse_to_fine_alpha
    from masklab.matting.coarse_to_fine import default_scale, downsample_trimap

    assert default_scale(1080, 1920) == 0.25 and default_scale(2160, 3840) == 0.125
    assert default_scale(480, 640) == 1.0
    image, alpha, _, _ = synthetic(80, 100, textured=True)
    image = cv2.resize(image, (400, 320), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(cv2.resize(alpha, (400, 320), interpolation=cv2.INTER_LINEAR), 0, 1)
    tri = trimap_from_mask(alpha > 0.5, band=40)
    small = downsample_trimap(tri, (100, 80))
    assert small.shape == (80, 100) and set(np.unique(small)) == {0, 128, 255}
    full = closed_form_alpha(image, tri)
    fast, info = coarse_to_fine_alpha(image, tri, scale=0.25, refine=0.2, return_info=True)
    assert info["coarse_size"] == (80, 100) and abs(info["refined"] - 0.2) < 0.01
    assert (fast[tri == 255] == 1).all() and (fast[tri == 0] == 0).all()
    e_full, e_fast = sad(full, alpha, tri), sad(fast, alpha, tri)
    assert e_fast <= 1.1 * e_full, (e_fast, e_full)
    none = coarse_to_fine_alpha(image, tri, scale=0.25, refine=0.0)
    assert sad(none, alpha, tri) <= 1.2 * e_full
    with pytest.raises(ValueError, match="refine"):
        coarse_to_fine_alpha(image, tri, refine=1.5)
