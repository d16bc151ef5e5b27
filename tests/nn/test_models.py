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


def test_losses_hand_values():
    logits = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[0, 255]]])
    assert cross_entropy(logits, target).item() == pytest.approx(torch.log(torch.tensor(2.0)))
    perfect = torch.tensor([[[[10.0, -10.0]], [[-10.0, 10.0]]]])
    assert dice_loss(perfect, torch.tensor([[[0, 1]]]), eps=0).item() == pytest.approx(0, abs=1e-6)
    assert focal_loss(perfect, torch.tensor([[[0, 1]]])).item() < 1e-8
    w = median_frequency_weights([10, 30, 60, 0])
    assert w.tolist() == pytest.approx([3.0, 1.0, 0.5, 0.0])
