import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_vitmatte(tmp_path_factory):
    """A tiny random ViTMatte saved as a transformers folder (what the resolver returns)."""
    folder = tmp_path_factory.mktemp("vitmatte")
    torch.manual_seed(0)
    backbone = transformers.VitDetConfig(hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, image_size=64,
                                         pretrain_image_size=64, num_channels=4,
                                         out_features=["stage2"])
    config = transformers.VitMatteConfig(backbone_config=backbone, hidden_size=32,
                                         convstream_hidden_sizes=[8, 16, 16],
                                         fusion_hidden_sizes=[16, 16, 8, 8])
    transformers.VitMatteForImageMatting(config).eval().save_pretrained(folder)
    transformers.VitMatteImageProcessor().save_pretrained(folder)
    return folder


def _scene(h=70, w=90):
    from masklab.matting import trimap_from_mask

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    tri = trimap_from_mask(np.hypot(yy - h / 2, xx - w / 2) < 20, band=6)
    return image, tri


def test_vitmatte_equals_transformers_on_the_same_weights(tiny_vitmatte):
    from masklab.matting import estimate_alpha

    image, tri = _scene()
    ours = estimate_alpha(image, tri, "vitmatte", weights=tiny_vitmatte)
    model = transformers.VitMatteForImageMatting.from_pretrained(tiny_vitmatte).eval()
    proc = transformers.VitMatteImageProcessor.from_pretrained(tiny_vitmatte)
    with torch.no_grad():
        ref = model(**proc(images=image, trimaps=tri, return_tensors="pt")).alphas
    ref = ref[0, 0, :70, :90].numpy()
    unknown = tri == 128
    assert ours.shape == (70, 90)
    np.testing.assert_allclose(ours[unknown], ref[unknown], atol=1e-6)
    assert (ours[tri == 255] == 1).all() and (ours[tri == 0] == 0).all()


def test_vitmatte_tiles_large_images(tiny_vitmatte):
    from masklab.matting.vitmatte import VitMatte

    image, tri = _scene(150, 170)
    net = VitMatte(tiny_vitmatte)
    whole = net.predict(image, tri)
    tiled = net.predict(image, tri, tile=96, overlap=32)
    assert tiled.shape == whole.shape and np.isfinite(tiled).all()
    assert (tiled[tri == 255] == 1).all() and (tiled[tri == 0] == 0).all()
    assert 0 <= tiled.min() and tiled.max() <= 1


def test_vitmatte_rejects_a_folder_that_is_not_vitmatte(tmp_path):
    from masklab.errors import WeightsError
    from masklab.matting.vitmatte import VitMatte

    (tmp_path / "config.json").write_text('{"model_type": "sam"}')
    with pytest.raises(WeightsError, match="not a transformers ViTMatte"):
        VitMatte(tmp_path)


def test_cli_matte_with_vitmatte(tiny_vitmatte, tmp_path):
    from masklab.io.images import read_image, write_image
    from tests.test_cli import run

    image, tri = _scene()
    write_image(tmp_path / "a.png", image)
    write_image(tmp_path / "t.png", tri)
    out = run("-q", "matte", tmp_path / "a.png", "--trimap", tmp_path / "t.png", "--solver",
              "vitmatte", "--weights", tiny_vitmatte, "--out", tmp_path / "m")
    assert out.returncode == 0, out.stderr
    got = read_image(tmp_path / "m" / "alpha.png", mode="gray")
    assert (got[tri == 255] == 255).all() and (got[tri == 0] == 0).all()
    from masklab.matting.vitmatte import VitMatte

    ref = VitMatte(tiny_vitmatte).predict(image, tri)
    assert np.abs(got / 255.0 - ref).max() <= 0.5 / 255 + 1e-9
