"""SAM 2.1 / EdgeTAM video backends: masks equal transformers' own propagation (tiny random
weights saved to a folder and loaded back like a real checkpoint), memory stays bounded."""

import numpy as np
import pytest
import torch

T = pytest.importorskip("transformers")

from masklab.video import VideoSession  # noqa: E402
from masklab.video.sam import SamVideoTracker  # noqa: E402


def tiny_video_model(family, folder):
    torch.manual_seed(0)
    pc = T.Sam2PromptEncoderConfig(hidden_size=128, image_size=256, patch_size=16)
    mc = T.Sam2MaskDecoderConfig(hidden_size=128, mlp_dim=64, num_attention_heads=2,
                                 iou_head_hidden_dim=32)
    sizes = [[64, 64], [32, 32], [16, 16]]
    mem = dict(image_size=256, memory_attention_hidden_size=128, memory_attention_num_layers=2,
               memory_attention_rope_feat_sizes=[16, 16], memory_encoder_hidden_size=128,
               mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128,
               memory_fuser_intermediate_dim=64, num_maskmem=4, max_object_pointers_in_encoder=6)
    if family == "sam2_video":
        bb = T.Sam2HieraDetConfig(hidden_size=16, blocks_per_stage=[1, 1, 2, 1],
                                  embed_dim_per_stage=[16, 32, 64, 128],
                                  num_attention_heads_per_stage=[1, 1, 1, 1],
                                  window_size_per_stage=[4, 4, 4, 4],
                                  global_attention_blocks=[3], image_size=[256, 256],
                                  window_positional_embedding_background_size=[4, 4])
        vc = T.Sam2VisionConfig(backbone_config=bb, backbone_channel_list=[128, 64, 32, 16],
                                backbone_feature_sizes=sizes, fpn_hidden_size=128)
        model = T.Sam2VideoModel(T.Sam2VideoConfig(
            vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc,
            memory_attention_feed_forward_hidden_size=64, **mem))
    else:
        pytest.importorskip("timm")
        bb = T.TimmWrapperConfig(architecture="repvit_m1", model_args={
            "features_only": True, "in_chans": 3, "out_indices": [0, 1, 2, 3]})
        vc = T.EdgeTamVisionConfig(backbone_config=bb, backbone_feature_sizes=sizes,
                                   fpn_hidden_size=128)
        model = T.EdgeTamVideoModel(T.EdgeTamVideoConfig(
            vision_config=vc, prompt_encoder_config=pc, mask_decoder_config=mc,
            memory_attention_mlp_hidden_size=64, **mem))
    with torch.no_grad():  # random weights say "no object" everywhere: make it appear
        model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(3.0)
    proc = T.Sam2VideoProcessor(
        image_processor=T.Sam2ImageProcessor(size={"height": 256, "width": 256}),
        video_processor=T.Sam2VideoVideoProcessor(size={"height": 256, "width": 256}))
    model.eval().save_pretrained(folder)
    proc.save_pretrained(folder)
    return model, proc


def _clip(n=14, h=90, w=120):
    """A textured background with a bright square moving right and a disc moving down."""
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 120, (h, w, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    frames = []
    for t in range(n):
        f = bg.copy()
        f[20:45, 10 + 3 * t:35 + 3 * t] = (230, 60, 40)
        f[((yy - 15 - 3 * t) ** 2 + (xx - 90) ** 2) < 100] = (40, 200, 230)
        frames.append(f)
    return frames


PROMPTS = {1: dict(points=[[22, 30], [60, 70]], labels=[1, 0], box=[8, 18, 38, 47]),
           2: "mask"}


def _reference(model, proc, frames, k, disc, reverse, objects=(1, 2)):
    """Transformers' own propagation, unpruned, of ``objects`` in one session."""
    s = proc.init_video_session(video=frames, inference_device="cpu")
    p = PROMPTS[1]
    if 1 in objects:
        proc.add_inputs_to_inference_session(
            s, frame_idx=k, obj_ids=1, input_points=[[p["points"]]],
            input_labels=[[p["labels"]]], input_boxes=[[p["box"]]])
        model(inference_session=s, frame_idx=k)
    if 2 in objects:
        proc.add_inputs_to_inference_session(s, frame_idx=k, obj_ids=2, input_masks=disc)
        model(inference_session=s, frame_idx=k)
    got = {}
    with torch.no_grad():
        for out in model.propagate_in_video_iterator(s, start_frame_idx=k, reverse=reverse):
            m = proc.post_process_masks([out.pred_masks], original_sizes=[frames[0].shape[:2]],
                                        binarize=True)[0]
            got[out.frame_idx] = {obj: m[i, 0].numpy() for i, obj in enumerate(objects)}
    return got


@pytest.mark.parametrize("family", ["sam2_video", "edgetam_video"])
def test_propagation_both_ways_equals_transformers(family, tmp_path):
    model, proc = tiny_video_model(family, tmp_path / family)
    frames = _clip()
    k = 6  # a prompt in the middle of the clip, propagated forward and backward
    h, w = frames[0].shape[:2]
    yy, xx = np.mgrid[:h, :w]
    disc = ((yy - 15 - 3 * k) ** 2 + (xx - 90) ** 2) < 100
    # EdgeTAM's forward fails on a point object and a mask object in one session
    # (transformers 5.24: "Tensors must have same number of dimensions"), so there each
    # object gets its own reference session; objects are independent in both models
    groups = [(1, 2)] if family == "sam2_video" else [(1,), (2,)]
    ref: dict = {}
    for objects in groups:
        for reverse in (False, True):
            for t, got in _reference(model, proc, frames, k, disc, reverse, objects).items():
                ref.setdefault(t, {}).update(got)
    assert sorted(ref) == list(range(len(frames)))

    s = VideoSession(frames, backend=tmp_path / family)
    s.add_prompt(k, 1, **PROMPTS[1])
    s.add_prompt(k, 2, mask=disc)
    seen = []
    nonempty = 0
    for t, masks in s.propagate():
        seen.append(t)
        dense = dict(zip(masks.labels, masks.to_dense(), strict=True))
        for obj in (1, 2):
            assert np.array_equal(dense[obj], ref[t][obj]), (family, t, obj)
            nonempty += bool(dense[obj].any())
    assert seen == list(range(len(frames)))
    assert nonempty > len(frames)  # the comparison is not between empty masks


def test_memory_bank_is_bounded_and_resumes_exactly(tmp_path):
    model, _ = tiny_video_model("sam2_video", tmp_path / "m")
    frames = _clip(n=24)
    tracker = SamVideoTracker(tmp_path / "m")
    s = VideoSession(frames, backend=tracker)
    s.add_prompt(0, 1, points=[[22, 30]], labels=[1])
    first = {t: m.to_dense()[0] for t, m in s.propagate(end=11)}
    (chain,) = tracker._chains.values()
    stored = chain.session.output_dict_per_obj[0]["non_cond_frame_outputs"]
    cfg = model.config
    assert len(stored) <= cfg.max_object_pointers_in_encoder - 1  # a window, not the clip
    full = [k for k, v in stored.items() if "maskmem_features" in v]
    assert len(full) <= cfg.num_maskmem - 1
    assert len(chain.session.cache._vision_features) <= 1
    rest = {t: m.to_dense()[0] for t, m in s.propagate()}  # continues the chain
    tracker.forget()
    s2 = VideoSession(frames, backend=tracker)
    s2.add_prompt(0, 1, points=[[22, 30]], labels=[1])
    again = {t: m.to_dense()[0] for t, m in s2.propagate()}
    for t in range(24):
        assert np.array_equal(again[t], first[t] if t <= 11 else rest[t]), t


def test_track_cli_with_a_sam_folder_equals_the_api(tmp_path):
    import cv2
    from click.testing import CliRunner

    from masklab.cli import main
    from masklab.io.davis import read_sequence

    tiny_video_model("sam2_video", tmp_path / "m")
    clip = tmp_path / "clip"
    clip.mkdir()
    for t, f in enumerate(_clip(n=8)):
        cv2.imwrite(str(clip / f"{t:05d}.png"), f[..., ::-1])
    r = CliRunner().invoke(main, ["--quiet", "track", str(clip), "--backend",
                                  str(tmp_path / "m"), "--point", "3,22,30",
                                  "--box", "3,8,18,38,47@2", "--no-overlay",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    _, ids = read_sequence(tmp_path / "out" / "Annotations" / "clip")
    s = VideoSession(clip, backend=tmp_path / "m")
    s.add_prompt(3, 2, box=[8, 18, 38, 47])
    s.add_prompt(3, 1, points=[[22, 30]], labels=[1])
    for t, _ in s.propagate():
        assert np.array_equal(ids[t], s.label_map(t)), t
    bad = CliRunner().invoke(main, ["track", str(clip), "--backend", "nosuch", "--point",
                                    "0,1,1", "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "unknown video backend 'nosuch'" in bad.output
    assert not (tmp_path / "o2").exists()


def test_discover_with_a_sam_backend_tracks_the_moving_objects(tmp_path):
    tiny_video_model("sam2_video", tmp_path / "m")
    frames = _clip(n=8)
    s = VideoSession(frames, backend=tmp_path / "m")
    found = s.discover(max_objects=5, every=4)
    assert found  # the square and the disc move against a still background
    assert len([t for t, _ in s.propagate()]) == 8
    h, w = frames[0].shape[:2]
    yy, xx = np.mgrid[:h, :w]

    def moving(t):  # where the square and the disc are on frame t, widened by 6 px
        m = np.zeros((h, w), bool)
        m[14:51, max(0, 4 + 3 * t):41 + 3 * t] = True
        return m | (((yy - 15 - 3 * t) ** 2 + (xx - 90) ** 2) < 16 ** 2)

    for obj in found:  # each object is found (and prompted by its mask) on a moving shape
        (t,) = s._anchors[obj]
        m = s.masks(t).to_dense()[list(s.masks(t).labels).index(obj)]
        assert m.any() and (m & moving(t)).sum() > 0.8 * m.sum(), (obj, t)


@pytest.mark.parametrize("family", ["sam2_video", "edgetam_video"])
def test_image_session_loads_a_video_checkpoint(family, tmp_path):
    """The hub's SAM 2.1 / EdgeTAM checkpoints are video models: the image Session loads
    their image part, and a click gives the mask the video model gives on its frame."""
    from masklab.interactive import Session
    from masklab.types import Prompts
    from masklab.video.frames import VideoFrames

    tiny_video_model(family, tmp_path / family)
    img = _clip(n=1)[0]
    got = Session(img, tmp_path / family).predict(points=[[22, 30]], point_labels=[1],
                                                  multimask=True)
    video, _ = SamVideoTracker(tmp_path / family).prompt(
        VideoFrames([img]), 0, Prompts(points=np.array([[22.0, 30.0]]),
                                       point_labels=np.array([1])))
    assert video.any()
    assert np.array_equal(got.to_dense()[0], video)  # the best of the three, both ways


def test_undo_after_a_correction_gives_back_the_same_masks(tmp_path):
    tiny_video_model("sam2_video", tmp_path / "m")
    frames = _clip(n=8)
    s = VideoSession(frames, backend=tmp_path / "m")
    s.add_prompt(0, 1, points=[[22, 30]], labels=[1])
    before = {t: m.to_dense()[0] for t, m in s.propagate()}
    s.add_prompt(5, 1, box=[20, 15, 60, 50])  # a correction: frames 3..7 change
    after = {t: m.to_dense()[0] for t, m in s.propagate()}
    assert any(not np.array_equal(before[t], after[t]) for t in range(3, 8))
    assert all(np.array_equal(before[t], after[t]) for t in range(3))  # nearest anchor: 0
    assert s.undo()
    again = {t: m.to_dense()[0] for t, m in s.propagate()}
    assert all(np.array_equal(before[t], again[t]) for t in range(8))
