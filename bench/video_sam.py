"""SAM 2.1 / EdgeTAM video backends: masklab's bounded propagation against transformers' own
loop on the same weights — frames/s, identical masks, and resident memory over a long video.

Speed: SAM 2.1 Hiera-T and EdgeTAM (RepViT-M1) at their real sizes, 854x480 frames, one
object from one click on frame 0. Weights are the real checkpoints when they are in the
masklab cache (``masklab weights fetch hf/sam2.1-hiera-tiny``), random ones of the same
architecture otherwise (the same computation per frame: memory attention runs either way).
transformers' loop: ``init_video_session(video=frames)``, the click, then
``propagate_in_video_iterator`` and ``post_process_masks`` per frame.

Memory: a tiny random model of each family (the bank's size does not depend on the weights)
over a synthetic 480p video of ``--long`` frames: resident memory after 200 frames and at
the end; transformers' streaming session on the same model for comparison.

    python bench/video_sam.py --frames 6 --long 2000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report
from video import SyntheticClip, rss_mb

from masklab.video import VideoSession
from masklab.video.sam import SamVideoTracker


def full_size(family: str, folder: Path) -> Path:
    """The real checkpoint if cached, else random weights of the real architecture."""
    import transformers as T

    from masklab.weights import resolve, verify

    name = {"sam2": "hf/sam2.1-hiera-tiny", "edgetam": "hf/edgetam"}[family]
    if verify(name)[0]:
        return Path(resolve(name))
    torch.manual_seed(0)  # not cached: random weights, the same computation
    if family == "sam2":
        model = T.Sam2VideoModel(T.Sam2VideoConfig())  # the defaults are Hiera-T
    else:
        bb = T.TimmWrapperConfig(architecture="repvit_m1", model_args={
            "features_only": True, "in_chans": 3, "out_indices": [0, 1, 2, 3]})
        vc = T.EdgeTamVisionConfig(backbone_config=bb, backbone_channel_list=[384, 192, 96, 48])
        model = T.EdgeTamVideoModel(T.EdgeTamVideoConfig(vision_config=vc))
    with torch.no_grad():  # random weights: make the object "present" so masks are not empty
        model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(3.0)
    out = folder / family
    model.eval().save_pretrained(out)
    T.Sam2VideoProcessor(image_processor=T.Sam2ImageProcessor(),
                         video_processor=T.Sam2VideoVideoProcessor()).save_pretrained(out)
    return out


def tiny(family: str, folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "video"))
    from test_sam_video import tiny_video_model

    tiny_video_model("sam2_video" if family == "sam2" else "edgetam_video", folder / family)
    return folder / family


def _model_class(folder: Path) -> str:
    import json

    from masklab.video.sam import VIDEO_FAMILIES

    return VIDEO_FAMILIES[json.loads((folder / "config.json").read_text())["model_type"]][0]


def clip_frames(n: int) -> list[np.ndarray]:
    clip = SyntheticClip(max(n, 2))
    return [clip[t] for t in range(n)]


def ours(folder: Path, frames, click) -> tuple[float, list[np.ndarray]]:
    tracker = SamVideoTracker(folder)
    t0 = time.perf_counter()
    s = VideoSession(frames, backend=tracker)
    s.add_prompt(0, 1, points=[click], labels=[1])
    masks = [m.to_dense()[0] for _, m in s.propagate()]
    return time.perf_counter() - t0, masks


@torch.inference_mode()
def theirs(folder: Path, frames, click) -> tuple[float, list[np.ndarray]]:
    import transformers as T

    model = getattr(T, _model_class(folder)).from_pretrained(str(folder)).eval()
    proc = T.Sam2VideoProcessor.from_pretrained(str(folder))
    t0 = time.perf_counter()
    s = proc.init_video_session(video=frames, inference_device="cpu")
    proc.add_inputs_to_inference_session(s, frame_idx=0, obj_ids=1,
                                         input_points=[[[list(click)]]], input_labels=[[[1]]])
    masks = []
    for out in model.propagate_in_video_iterator(s, start_frame_idx=0):
        m = proc.post_process_masks([out.pred_masks], original_sizes=[frames[0].shape[:2]],
                                    binarize=True)[0]
        masks.append(m[0, 0].numpy())
    return time.perf_counter() - t0, masks


def memory(folder: Path, n: int, streaming_reference: int) -> dict:
    """RSS after 200 frames and after ``n`` for ours; transformers' streaming session over
    ``streaming_reference`` frames."""
    import transformers as T

    clip = SyntheticClip(n)
    tracker = SamVideoTracker(folder)
    s = VideoSession(clip, backend=tracker, cache=8)
    s.add_prompt(0, 1, mask=clip.mask(0))
    at = {}
    t0 = time.perf_counter()
    for t, _ in s.propagate():
        if t + 1 in (200, n):
            gc.collect()
            at[t + 1] = rss_mb()
    fps = n / (time.perf_counter() - t0)
    del s, tracker
    gc.collect()
    model = getattr(T, _model_class(folder)).from_pretrained(str(folder)).eval()
    proc = T.Sam2VideoProcessor.from_pretrained(str(folder))
    sess = proc.init_video_session(inference_device="cpu")
    ref = {}
    with torch.inference_mode():
        for t in range(streaming_reference):
            px = proc(images=clip[t], device="cpu", return_tensors="pt")
            if t == 0:
                proc.add_inputs_to_inference_session(sess, frame_idx=0, obj_ids=1,
                                                     input_masks=clip.mask(0))
            model(inference_session=sess, frame=px.pixel_values[0])
            if t + 1 in (100, streaming_reference):
                gc.collect()
                ref[t + 1] = rss_mb()
    return {"rss_200": at[200], f"rss_{n}": at[n], "growth": at[n] / at[200] - 1,
            "frames_per_s": fps, "tf_rss_100": ref[100],
            f"tf_rss_{streaming_reference}": ref[streaming_reference],
            "tf_mb_per_frame": (ref[streaming_reference] - ref[100]) /
            (streaming_reference - 100)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=6, help="frames for the speed comparison")
    ap.add_argument("--long", type=int, default=2000, help="frames for the memory check")
    ap.add_argument("--reference-frames", type=int, default=400,
                    help="frames of transformers' streaming session for its memory")
    ap.add_argument("--families", default="edgetam,sam2")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows, meta = [], {"frames": args.frames, "size": "854x480", "threads":
                      torch.get_num_threads()}
    frames = clip_frames(args.frames)
    click = (427.0, 240.0)
    with tempfile.TemporaryDirectory() as tmp:
        for fam in args.families.split(","):
            folder = full_size(fam, Path(tmp))
            t_ours, m_ours = ours(folder, frames, click)
            t_ref, m_ref = theirs(folder, frames, click)
            same = all(np.array_equal(a, b) for a, b in zip(m_ours, m_ref, strict=True))
            rows.append({"model": fam, "masklab_fps": args.frames / t_ours,
                         "transformers_fps": args.frames / t_ref, "ratio": t_ref / t_ours,
                         "identical_masks": same, "nonempty_frames":
                         int(sum(m.any() for m in m_ours))})
            mem = memory(tiny(fam, Path(tmp)), args.long, args.reference_frames)
            meta[f"{fam}_memory"] = mem
            print(f"{fam}: resident memory {mem['rss_200']:.0f} MB after 200 frames, "
                  f"{mem[f'rss_{args.long}']:.0f} MB after {args.long} "
                  f"({mem['growth']:+.1%}); transformers' streaming session grows "
                  f"{mem['tf_mb_per_frame']:.2f} MB/frame")
    report("video_sam", rows, meta)


if __name__ == "__main__":
    main()
