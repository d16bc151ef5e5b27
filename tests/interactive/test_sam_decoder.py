"""masklab's one-prompt SAM decoder against transformers' decoder on identical weights."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from masklab.interactive import Session
from masklab.interactive.sam import SamBackend
from masklab.interactive.sam_decoder import FastSamDecoder
from tests.interactive.test_sam import _tiny_family, _tiny_sam

PROMPTS = {
    "points": dict(input_points=[[[[30.0, 40.0], [70.0, 20.0], [200.0, 100.0]]]],
                   input_labels=[[[1, 0, 1]]]),
    "box": dict(input_boxes=[[[5.0, 5.0, 100.0, 80.0]]]),
    "points+box": dict(input_points=[[[[30.0, 40.0]]]], input_labels=[[[1]]],
                       input_boxes=[[[5.0, 5.0, 100.0, 80.0]]]),
    "points+mask": dict(input_points=[[[[30.0, 40.0]]]], input_labels=[[[0]]], mask=True),
    "mask": dict(mask=True),
}


def _backend(family, folder):
    if family == "sam":
        _tiny_sam(folder)
    else:
        _tiny_family(family, folder)
    b = SamBackend(folder)
    # logits well away from zero (the tiny SAM 2's are ~1e-4): scale the hypernetworks'
    # output layers, which scales the mask logits linearly, to a peak of about 10
    md = b.model.mask_decoder
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # transformers initialises biases to zero: make them count
        for name, p in md.named_parameters():
            if name.endswith("bias") and "hypernetworks" not in name:  # (logits' sign)
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    state = b.set_image(np.random.default_rng(9).integers(0, 255, (90, 120, 3), np.uint8))
    with torch.no_grad():
        peak = b.model(image_embeddings=state["embeddings"], **_inputs(PROMPTS["points"])
                       ).pred_masks.abs().max()
        for mlp in md.output_hypernetworks_mlps:
            mlp.proj_out.weight.mul_(10 / peak)
            mlp.proj_out.bias.mul_(10 / peak)
    b._fast = FastSamDecoder(b.model, b.family)  # its weights are read when it is built
    return b


def _inputs(spec):
    kw = {k: torch.tensor(v) for k, v in spec.items() if k != "mask"}
    if spec.get("mask"):
        g = torch.Generator().manual_seed(0)
        kw["input_masks"] = 5 * torch.randn(1, 1, 64, 64, generator=g)
    return kw


def _both(b, state, kw, multimask):
    with torch.no_grad():
        ref = b.model(image_embeddings=state["embeddings"], multimask_output=multimask, **kw)
        got = b._fast(state, kw.get("input_points"), kw.get("input_labels"),
                      kw.get("input_boxes"), kw.get("input_masks"), multimask)
    return (ref.pred_masks, ref.iou_scores), got


@pytest.mark.parametrize("family", ["sam", "sam2", "edgetam"])
@pytest.mark.parametrize("prompt", list(PROMPTS))
def test_fast_decoder_equals_transformers(family, prompt, tmp_path):
    if family == "edgetam":
        pytest.importorskip("timm")
    b = _backend(family, tmp_path / family)
    img = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    state = b.set_image(img)
    for multimask in (True, False):
        (ref_m, ref_s), (got_m, got_s) = _both(b, state, _inputs(PROMPTS[prompt]), multimask)
        assert got_m.shape == ref_m.shape and got_s.shape == ref_s.shape
        scale = float(ref_m.abs().max())
        assert scale > 1  # a real test: logits well away from zero, and varying
        assert float(ref_m.max() - ref_m.min()) > 0.2 * scale
        np.testing.assert_allclose(got_m.numpy(), ref_m.numpy(), atol=2e-5 * scale)
        np.testing.assert_allclose(got_s.numpy(), ref_s.numpy(), atol=1e-5)


@pytest.mark.parametrize("threshold", [0.0, 2.0])  # always stable / never stable
def test_sam2_single_mask_falls_back_like_transformers(threshold, tmp_path):
    b = _backend("sam2", tmp_path / "sam2")
    b.model.mask_decoder.dynamic_multimask_stability_thresh = threshold
    state = b.set_image(np.random.default_rng(1).integers(0, 255, (90, 120, 3), np.uint8))
    (ref_m, ref_s), (got_m, got_s) = _both(b, state, _inputs(PROMPTS["points"]), False)
    np.testing.assert_allclose(got_s.numpy(), ref_s.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_m.numpy(), ref_m.numpy(),
                               atol=2e-5 * float(ref_m.abs().max()))
    with torch.no_grad():  # the two thresholds pick different masks
        multi = b.model(image_embeddings=state["embeddings"], multimask_output=True,
                        **_inputs(PROMPTS["points"]))
    best = multi.iou_scores[0, 0].max()
    assert (abs(float(ref_s[0, 0, 0]) - float(best)) < 1e-6) == (threshold > 1)


def test_per_image_cache_follows_the_image(tmp_path):
    _tiny_family("sam2", tmp_path / "sam2")
    rng = np.random.default_rng(5)
    img1, img2 = (rng.integers(0, 255, (90, 120, 3), dtype=np.uint8) for _ in range(2))
    s1 = Session(img1, tmp_path / "sam2")
    assert s1.backend._fast is not None
    a = s1.predict(points=[[30, 40]], multimask=False)
    a2 = s1.predict(points=[[30, 40]], multimask=False)  # served from the cache
    s2 = Session(img2, s1.backend)  # the same backend, a new image: nothing may leak
    b = s2.predict(points=[[30, 40]], multimask=False)
    fresh = Session(img2, tmp_path / "sam2").predict(points=[[30, 40]], multimask=False)
    back = s1.predict(points=[[30, 40]], multimask=False)  # and back to the first image
    assert np.array_equal(a.to_dense(), a2.to_dense()) and a.scores[0] == a2.scores[0]
    assert np.array_equal(b.to_dense(), fresh.to_dense()) and b.scores[0] == fresh.scores[0]
    assert np.array_equal(back.to_dense(), a.to_dense()) and back.scores[0] == a.scores[0]
    assert not np.array_equal(a.to_dense(), b.to_dense())


def test_sam_hq_keeps_the_transformers_decoder(tmp_path):
    _tiny_family("sam_hq", tmp_path / "hq")
    assert SamBackend(tmp_path / "hq")._fast is None
    with pytest.raises(ValueError, match="no fast decoder"):
        FastSamDecoder(SamBackend(tmp_path / "hq").model, "sam_hq")
    # bf16 runs the image encoder in bfloat16 too; the embeddings (SAM-HQ: a list holding a
    # list of intermediate embeddings) come back as float32
    img = np.random.default_rng(6).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    s = Session(img, tmp_path / "hq", precision="bf16")
    got = s.predict(points=[[30, 40]], multimask=True)
    emb = s._state["embeddings"]
    assert emb[0].dtype == torch.float32 and all(e.dtype == torch.float32 for e in emb[1])
    assert len(got) == 3 and got.size == (90, 120)


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_batches_of_prompts_equal_transformers(family, tmp_path):
    """Segment everything's inner loop: P prompts at once, the first block shared."""
    b = _backend(family, tmp_path / family)
    state = b.set_image(np.random.default_rng(2).integers(0, 255, (90, 120, 3), np.uint8))
    pts = torch.tensor(np.random.default_rng(3).uniform(0, 250, (1, 7, 2, 2)),
                       dtype=torch.float32)
    kw = dict(input_points=pts, input_labels=torch.tensor([[[1, 0]] * 7]))
    for multimask in (True, False):
        (ref_m, ref_s), (got_m, got_s) = _both(b, state, kw, multimask)
        assert got_m.shape == ref_m.shape == (1, 7, 3 if multimask else 1, 64, 64)
        np.testing.assert_allclose(got_s.numpy(), ref_s.numpy(), atol=1e-5)
        np.testing.assert_allclose(got_m.numpy(), ref_m.numpy(),
                                   atol=2e-5 * float(ref_m.abs().max()))
    # the automatic-mask loop yields the same as the model's own batched forward
    grid = np.array([[10.0, 10.0], [60.0, 45.0], [110.0, 80.0]])
    (logits, iou), = list(b.predict_points(state, grid, batch=3))
    sx, sy = b._frame(state)
    with torch.no_grad():
        ref = b.model(image_embeddings=state["embeddings"],
                      input_points=torch.tensor(grid * [sx, sy], dtype=torch.float32)[None, :,
                                                                                       None],
                      input_labels=torch.ones(1, 3, 1, dtype=torch.int64))
    np.testing.assert_allclose(iou.numpy(), ref.iou_scores[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), ref.pred_masks[0].numpy(),
                               atol=2e-5 * float(ref.pred_masks.abs().max()))


def test_stability_fallback_per_prompt_equals_transformers(tmp_path):
    """SAM 2's single-mask choice, prompt by prompt in one batch, on logits made to be
    stable (prompt 0: far from zero) and unstable (prompt 1: inside ±delta)."""
    b = _backend("sam2", tmp_path / "sam2")
    md = b.model.mask_decoder
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, 16, 16, generator=g) * 10
    logits[1, 0] = 0.5 * md.dynamic_multimask_stability_delta * torch.rand(16, 16, generator=g)
    logits[2, 0] = -20.0  # empty at both thresholds: stability 1 by definition
    iou = torch.rand(3, 4, generator=g)
    got_m, got_s = b._fast._dynamic(logits, iou)
    ref_m, ref_s = md._dynamic_multimask_via_stability(logits[None], iou[None])
    assert torch.equal(got_m, ref_m[0]) and torch.equal(got_s, ref_s[0])
    best = 1 + int(torch.argmax(iou[1, 1:]))
    assert torch.equal(got_m[0, 0], logits[0, 0]) and torch.equal(got_m[1, 0], logits[1, best])
    assert torch.equal(got_m[2, 0], logits[2, 0])
