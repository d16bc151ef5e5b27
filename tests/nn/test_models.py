import pytest
import torch

from masklab.nn.fcn import FCN
from masklab.nn.losses import cross_entropy, dice_loss, focal_loss, median_frequency_weights
from masklab.nn.unet import UNet


@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (31, 97)])
def test_fcn_any_input_size(variant, size):
    m = FCN(5, variant, width=4).eval()
    assert m(torch.randn(2, 3, *size)).shape == (2, 5, *size)


@pytest.mark.parametrize("up", ["nearest", "bilinear", "bicubic", "bed_of_nails", "transposed",
                                "max_unpool"])
def test_unet_upsampling_methods_and_odd_sizes(up):
    m = UNet(3, depth=3, width=4, upsampling=up).eval()
    for size in ((45, 61), (16, 16), (9, 33)):
        assert m(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_local_contrast_norm_by_hand_and_invariant_to_brightness_and_contrast():
    from masklab.nn.unet import local_contrast_norm

    flat = torch.full((1, 3, 20, 24), 0.7)
    assert local_contrast_norm(flat).abs().max() < 1e-6  # nothing local to keep
    # a step edge: zero mean far from it, opposite signs either side, symmetric
    step = torch.zeros(1, 1, 20, 40)
    step[..., 20:] = 1.0
    y = local_contrast_norm(step)[0, 0]
    assert y[:, :10].abs().max() < 1e-5 and y[:, 30:].abs().max() < 1e-5
    torch.testing.assert_close(y[:, 19], -y[:, 20])
    assert y[0, 19] < 0 < y[0, 20]
    x = torch.rand(2, 3, 33, 41)
    gain = torch.tensor([0.3, 2.0, 5.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(local_contrast_norm(gain * x + 0.4), local_contrast_norm(x),
                               atol=1e-5, rtol=1e-4)
    m = UNet(4, depth=2, width=4, lcn=True).eval()
    assert m.enc[0][0].in_channels == 6 and m(x).shape == (2, 4, 33, 41)


def test_losses_hand_values():
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[0, 255]]])
    assert cross_entropy(logits, target).item() == pytest.approx(torch.log(torch.tensor(2.0)))
    perfect = torch.tensor([[[[10.0, -10.0]], [[-10.0, 10.0]]]])
    assert dice_loss(perfect, torch.tensor([[[0, 1]]]), eps=0).item() == pytest.approx(0, abs=1e-6)
    assert focal_loss(perfect, torch.tensor([[[0, 1]]])).item() < 1e-8
    w = median_frequency_weights([10, 30, 60, 0])
    assert w.tolist() == pytest.approx([3.0, 1.0, 0.5, 0.0])
