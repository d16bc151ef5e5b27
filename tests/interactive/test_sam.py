"""SAM through masklab's session against the same tiny network called through transformers."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from masklab.interactive import Session


def _tiny_sam(folder):
    import transformers as T

    torch.manual_seed(0)
    vc = T.SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=256, patch_size=16, output_channels=32,
                           global_attn_indexes=[1], mlp_dim=64, window_size=4, num_pos_feats=16)
    pc = T.SamPromptEncoderConfig(hidden_size=32, image_size=256, patch_size=16,
                                  mask_input_channels=4)
    mc = T.SamMaskDecoderConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                mlp_dim=64, iou_head_hidden_dim=32)
    model = T.SamModel(T.SamConfig(vision_config=vc, prompt_encoder_config=pc,
                                   mask_decoder_config=mc)).eval()
    with torch.no_grad():  # masks with some foreground
        for p in model.mask_decoder.parameters():
            p.mul_(4.0)
    proc = T.SamProcessor(image_processor=T.SamImageProcessor(
        size={"longest_edge": 256}, pad_size={"height": 256, "width": 256}))
    model.save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def _reference(model, proc, img, multimask, **prompts):
    inputs = proc(images=img, return_tensors="pt", **prompts)
    with torch.no_grad():
        out = model(**{k: v for k, v in inputs.items()
                       if k not in ("original_sizes", "reshaped_input_sizes")},
                    multimask_output=multimask)
    masks = proc.post_process_masks(out.pred_masks, inputs["original_sizes"],
                                    inputs["reshaped_input_sizes"])[0][0].numpy()
    return masks, out.iou_scores[0, 0].numpy()


def test_session_equals_transformers_on_identical_weights(tmp_path):
    model, proc = _tiny_sam(tmp_path / "sam")
    img = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    s = Session(img, tmp_path / "sam")
    got = s.predict(points=[[30, 40], [70, 20]], point_labels=[1, 0], multimask=True)
    ref, scores = _reference(model, proc, img, True, input_points=[[[[30, 40], [70, 20]]]],
                             input_labels=[[[1, 0]]])
    order = np.argsort(-scores, kind="stable")
    assert len(got) == 3 and got.size == (90, 120)
    np.testing.assert_allclose(got.scores, scores[order], rtol=1e-5, atol=1e-6)
    assert np.array_equal(got.to_dense(), ref[order])
    assert got.to_dense().any()

    one = s.predict(box=[10, 15, 80, 70], points=[[40, 40]], multimask=False)
    ref1, s1 = _reference(model, proc, img, False, input_boxes=[[[10, 15, 80, 70]]],
                          input_points=[[[[40, 40]]]], input_labels=[[[1]]])
    assert len(one) == 1 and np.array_equal(one.to_dense(), ref1)
    np.testing.assert_allclose(one.scores, s1, rtol=1e-5, atol=1e-6)
    # the embedding is computed once; previous logits can be fed back
    t = s.embed_seconds
    again = s.predict(points=[[40, 40]], use_previous=True)
    assert s.embed_seconds == t and again.size == (90, 120)
    assert s.last_logits.shape[-2:] == (64, 64)


def test_unknown_backend_and_bad_folder(tmp_path):
    from masklab.errors import InputError, WeightsError

    img = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(InputError, match="unknown backend"):
        Session(img, "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(WeightsError, match="not one of"):
        Session(img, tmp_path / "x")


def test_scribbles_and_mask_prompts_reach_sam(tmp_path):
    from masklab.types.prompts import Scribble

    _tiny_sam(tmp_path / "sam")
    img = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    s = Session(img, tmp_path / "sam")
    stroke = Scribble([[20, 30], [60, 30]], width=3)
    a = s.predict(scribbles=[stroke])
    b = s.predict(points=stroke.sample_points(5))  # what the scribble becomes
    assert np.array_equal(a.to_dense(), b.to_dense())
    mask = np.zeros((90, 120), bool)
    mask[20:60, 30:90] = True
    with_mask = s.predict(points=[[50, 40]], mask=mask)
    without = s.predict(points=[[50, 40]])
    assert with_mask.size == (90, 120)
    assert not np.allclose(with_mask.scores, without.scores)  # the mask input was used
    raster = Scribble.from_raster(mask)
    assert raster.rasterize(90, 120).sum() == mask.sum() and len(raster.sample_points(5)) == 5


def _tiny_family(family, folder):
    import transformers as T

    torch.manual_seed(0)
    pc = T.Sam2PromptEncoderConfig(hidden_size=32, image_size=256, patch_size=16)
    mc = T.Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_attention_heads=2,
                                 iou_head_hidden_dim=32)
    sizes = [[64, 64], [32, 32], [16, 16]]
    if family == "sam2":
        bb = T.Sam2HieraDetConfig(hidden_size=16, blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[16, 32, 64, 128],
                                  num_attention_heads_per_stage=[1, 1, 1, 1],
                                  window_size_per_stage=[4, 4, 4, 4],
                                  global_attention_blocks=[3], image_size=[256, 256],
                                  window_positional_embedding_background_size=[4, 4])
        vc = T.Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[128, 64, 32, 16],
                                backbone_feature_sizes=sizes, fpn_hidden_size=32)
        model = T.Sam2Model(T.Sam2Config(vision_config=vc, prompt_encoder_config=pc,
                                         mask_decoder_config=mc))
    elif family == "edgetam":
        pytest.importorskip("timm")
        bb = T.TimmWrapperConfig(architecture="repvit_m1", model_args={
            "features_only": True, "in_chans": 3, "out_indices": [0, 1, 2, 3]})
        vc = T.EdgeTamVisionConfig(backbone_config=bb, backbone_feature_sizes=sizes,
                                   fpn_hidden_size=32)
        model = T.EdgeTamModel(T.EdgeTamConfig(vision_config=vc, prompt_encoder_config=pc,
                                               mask_decoder_config=mc))
    else:  # sam_hq
        vc = T.SamHQVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 image_size=256, patch_size=16, output_channels=32,
                                 global_attn_indexes=[1], mlp_dim=64, window_size=4,
                                 num_pos_feats=16)
        model = T.SamHQModel(T.SamHQConfig(
            vision_config=vc,
            prompt_encoder_config=T.SamHQPromptEncoderConfig(
                hidden_size=32, image_size=256, patch_size=16, mask_input_channels=4),
            mask_decoder_config=T.SamHQMaskDecoderConfig(
                hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_dim=64,
                iou_head_hidden_dim=32, vit_dim=32)))
        proc = T.SamHQProcessor(image_processor=T.SamImageProcessor(
            size={"longest_edge": 256}, pad_size={"height": 256, "width": 256}))
    if family != "sam_hq":
        proc = T.Sam2Processor(image_processor=T.Sam2ImageProcessor(
            size={"height": 256, "width": 256}))
    model.eval().save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


@pytest.mark.parametrize("family", ["sam2", "edgetam", "sam_hq"])
def test_sam2_family_session_equals_transformers(family, tmp_path):
    model, proc = _tiny_family(family, tmp_path / family)
    img = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    got = Session(img, tmp_path / family).predict(points=[[30, 40], [70, 20]],
                                                  point_labels=[1, 0], box=[5, 5, 100, 80],
                                                  multimask=True)
    inputs = proc(images=img, input_points=[[[[30, 40], [70, 20]]]], input_labels=[[[1, 0]]],
                  input_boxes=[[[5, 5, 100, 80]]], return_tensors="pt")
    sizes = {k: inputs.pop(k) for k in ("original_sizes", "reshaped_input_sizes")
             if k in inputs}
    with torch.no_grad():
        out = model(**inputs, multimask_output=True)
    ref = proc.post_process_masks(out.pred_masks, *sizes.values())[0][0].numpy()
    scores = out.iou_scores[0, 0].numpy()
    order = np.argsort(-scores, kind="stable")
    np.testing.assert_allclose(got.scores, scores[order], rtol=1e-5, atol=1e-6)
    assert np.array_equal(got.to_dense(), ref[order])


def _both_sessions(fast, ref):
    """``(fast, ref)`` predictions for one multimask click, then three single-mask clicks."""
    for pts, labels, multi in [([[30, 40]], [1], True), ([[30, 40], [70, 20], [90, 60]],
                                                        [1, 0, 1], False)]:
        yield (fast.predict(points=pts, point_labels=labels, multimask=multi),
               ref.predict(points=pts, point_labels=labels, multimask=multi))


@pytest.mark.parametrize("family", ["sam", "sam2"])
def test_onnx_decoder_matches_torch(family, tmp_path):
    pytest.importorskip("onnxruntime")
    if family == "sam":
        _tiny_sam(tmp_path / family)
    else:
        _tiny_family(family, tmp_path / family)
    img = np.random.default_rng(2).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    fast = Session(img, tmp_path / family, decoder="onnx")
    for a, b in _both_sessions(fast, Session(img, tmp_path / family)):
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-3)
        inter = (a.to_dense() & b.to_dense()).sum()
        union = (a.to_dense() | b.to_dense()).sum()
        assert inter / max(union, 1) >= 0.99
    assert len(fast.backend._onnx) == 2  # one export per multimask setting, any point count
    with pytest.raises(ValueError, match="decoder"):
        Session(img, tmp_path / family, decoder="tensorrt")


@pytest.mark.parametrize("family", ["sam2", "edgetam"])
def test_bf16_decoder_agrees_with_fp32(family, tmp_path):
    # (the tiny SAM v1 of these tests has near-zero logits over most of the image, where 8
    # bits of mantissa flip pixels; its bf16 path is the same code)
    _tiny_family(family, tmp_path / family)
    img = np.random.default_rng(3).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    fast = Session(img, tmp_path / family, precision="bf16")
    for a, b in _both_sessions(fast, Session(img, tmp_path / family)):
        assert a.scores.dtype == b.scores.dtype
        # bf16 keeps 8 bits of mantissa; the tiny SAM's decoder weights are scaled 4x (to
        # get foreground), which scales the rounding too (real-size decoders: ~0.005)
        np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=0.15)
        ma, mb = a.to_dense(), b.to_dense()
        for m in ma:  # the order may swap where predicted IoUs are close
            ious = [(m & n).sum() / max((m | n).sum(), 1) for n in mb]
            assert max(ious) >= 0.95
    with pytest.raises(ValueError, match="precision"):
        Session(img, tmp_path / family, precision="fp8")
