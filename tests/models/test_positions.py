import pytest
import torch

pytest.importorskip("transformers")

from masklab.models.positions import cache_position_encodings


def test_cached_sine_position_encodings_equal_the_models_own():
    """Four feature levels per image, three images: each shape computed once, every tensor
    bitwise the one transformers computes."""
    import transformers as T

    enc = T.models.sam2.modeling_sam2.Sam2SinePositionEmbedding(num_position_features=16,
                                                                 normalize=True)
    holder = torch.nn.Sequential(enc)
    assert cache_position_encodings(holder) == 1
    shapes = [torch.Size([1, 32, s, s]) for s in (64, 32, 16, 8)]
    for _ in range(3):
        for shape in shapes:
            got = enc(shape, "cpu", torch.float32)
            want = type(enc).build_sine_position_embedding(shape, "cpu", torch.float32, 16,
                                                           True, enc.scale, 10000)
            assert torch.equal(got, want)
    assert enc.forward.misses == 4
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    assert enc(torch.Size([1, 32, 8, 8]), "cpu", torch.float32, mask).shape == (1, 32, 8, 8)
    assert enc.forward.misses == 4  # a padding mask is never cached
