import numpy as np
import pytest
import torch
import torch.nn.functional as F

from masklab.nn.upsample import (
    MaxPoolWithIndices,
    TransposedConvUp,
    Upsample,
    bed_of_nails,
    bicubic,
    bilinear,
    max_unpool,
    nearest,
)

X = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]


def grid(t):
    return np.round(t[0, 0].detach().double().numpy(), 2).tolist()


def test_lecture_worked_examples():
    assert grid(nearest(X)) == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert grid(bed_of_nails(X)) == [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    assert grid(bilinear(X)) == [[1.00, 1.25, 1.75, 2.00], [1.50, 1.75, 2.25, 2.50],
                                 [2.50, 2.75, 3.25, 3.50], [3.00, 3.25, 3.75, 4.00]]
    assert grid(bicubic(X)) == [[0.68, 1.02, 1.56, 1.89], [1.35, 1.68, 2.23, 2.56],
                                [2.44, 2.77, 3.32, 3.65], [3.11, 3.44, 3.98, 4.32]]


def test_bicubic_equals_pytorch_on_random_inputs():
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    ref = F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)
    torch.testing.assert_close(bicubic(x, 3), ref, atol=1e-12, rtol=0)
    ref = F.interpolate(x, size=(11, 13), mode="bicubic", align_corners=False)
    torch.testing.assert_close(bicubic(x, size=(11, 13)), ref, atol=1e-12, rtol=0)


def test_max_unpool_restores_remembered_positions():
    x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0], [3.0, 0.0, 1.0, 7.0],
                        [0.0, 0.0, 9.0, 1.0], [4.0, 0.0, 0.0, 2.0]]]])
    pooled, idx = MaxPoolWithIndices(2)(x)
    assert grid(pooled) == [[5, 7], [4, 9]]
    assert grid(max_unpool(pooled, idx)) == [[0, 5, 0, 0], [0, 0, 0, 7], [0, 0, 9, 0],
                                             [4, 0, 0, 0]]


def test_transposed_convolution_hand_case_and_bilinear_init():
    # stride 2, 3x3 kernel of ones: every input value spreads over a 3x3 window, overlaps add
    out = F.conv_transpose2d(X, torch.ones(1, 1, 3, 3), stride=2)
    assert grid(out) == [[1, 1, 3, 2, 2], [1, 1, 3, 2, 2], [4, 4, 10, 6, 6], [3, 3, 7, 4, 4],
                         [3, 3, 7, 4, 4]]
    up = TransposedConvUp(1, 1, scale=2)
    y = up(torch.ones(1, 1, 6, 6))
    assert y.shape == (1, 1, 12, 12)
    assert torch.allclose(y[0, 0, 2:-2, 2:-2], torch.ones(8, 8))  # bilinear start: flat stays


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "bed_of_nails",
                                    "transposed"])
def test_upsample_module_shapes(method):
    up = Upsample(method, 2, channels=3)
    assert up(torch.randn(2, 3, 5, 7)).shape == (2, 3, 10, 14)
    with pytest.raises(ValueError):
        Upsample("magic")
