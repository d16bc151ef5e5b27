"""SAM 2.1 / EdgeTAM video backends: masklab's bounded propagation against transformers' own
loop on the same weights — frames/s, identical masks, and resident memory over a long video.

Speed: SAM 2.1 Hiera-T and EdgeTAM (RepViT-M1) at their real sizes, 854x480 frames, one
object from one click on frame 0. Weights are the real checkpoints when they are in the
masklab cache (``masklab weights fetch hf/sam2.1-hiera-tiny``), random ones of the same
architecture otherwise (the same computation per frame: memory attention runs either way).
transformers' loop: ``init_video_session(video=frames)``, the click, then
``propagate_in_video_iterator`` and ``post_process_masks`` per frame.

Arithmetic (``--flops``): floating-point operations per frame once the memory bank is full
(frame 8: the prompted frame and six previous frames in memory), counted op by op for
masklab's tracker and for transformers' loop on the same frame, against the fp32 (and bf16)
matrix-product rate this machine reaches: the speed any implementation of the model can
have here. The bf16 column is masklab's tracker under ``torch.autocast(bfloat16)`` — timed
only: its masks are not comparable on random weights.

Memory: a tiny random model of each family (the bank's size does not depend on the weights)
over a synthetic 480p video of ``--long`` frames: resident memory after 200 frames and at
the end; transformers' streaming session on the same model for comparison.

    python bench/video_sam.py --frames 6 --long 2000
    python bench/video_sam.py --flops             # writes bench/results/video_sam_flops.json
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


class _Flops:
    """Counts floating-point operations of the aten ops run inside it (``torch.utils.
    flop_counter``'s formulas; composite ops such as ``linear`` are decomposed first, as
    under inference mode they arrive undecomposed)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_flop_count

        cpu_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
        if cpu_flash not in flop_registry:  # torch counts the CUDA kernels only
            register_flop_formula([cpu_flash])(
                lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v))
        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                formula = flop_registry.get(func._overloadpacket)
                if formula is None:
                    with self:
                        out = func.decompose(*args, **kwargs)
                    if out is not NotImplemented:
                        return out
                out = func(*args, **kwargs)
                if formula is not None:
                    counter.total += formula(*args, **kwargs, out_val=out)
                return out

        self.total, self.mode = 0, Mode()

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


def matmul_rate(dtype: torch.dtype) -> float:
    """GFLOP/s of a large matrix product on this machine (best of 5)."""
    a, b = torch.randn(4096, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
    a @ b
    t = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 4096 * 1024 * 1024 / t / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def steady_frame(folder: Path, frames, click, which: str) -> tuple[float, float]:
    """(GFLOP, seconds) of frame 8 for masklab's tracker, transformers' loop, or masklab's
    tracker under bf16 autocast."""
    import contextlib

    import transformers as T

    if which == "transformers":
        model = getattr(T, _model_class(folder)).from_pretrained(str(folder)).eval()
        proc = T.Sam2VideoProcessor.from_pretrained(str(folder))
        with torch.inference_mode():
            s = proc.init_video_session(video=frames, inference_device="cpu")
            proc.add_inputs_to_inference_session(s, frame_idx=0, obj_ids=1,
                                                 input_points=[[[list(click)]]],
                                                 input_labels=[[[1]]])
            it = iter(model.propagate_in_video_iterator(s, start_frame_idx=0))
            step = lambda: next(it)  # noqa: E731
            for _ in range(8):
                step()
            with _Flops() as f:
                t = _timed(step)
        return f.total / 1e9, t
    s = VideoSession(frames, backend=SamVideoTracker(folder))
    s.add_prompt(0, 1, points=[click], labels=[1])
    it = s.propagate()
    cast = torch.autocast("cpu", dtype=torch.bfloat16) if which == "bf16" else \
        contextlib.nullcontext()
    with cast:
        for _ in range(8):
            next(it)
        with _Flops() as f:
            t = _timed(lambda: next(it))
    return f.total / 1e9, t


def flops(args) -> None:
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    frames = clip_frames(10)
    click = (427.0, 240.0)
    target = {"sam2": 0.5, "edgetam": 2.0}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fam in args.families.split(","):
            folder = full_size(fam, Path(tmp))
            g_ours, t_ours = steady_frame(folder, frames, click, "masklab")
            g_ref, t_ref = steady_frame(folder, frames, click, "transformers")
            _, t_bf16 = steady_frame(folder, frames, click, "bf16")
            rows.append({
                "model": fam, "gflop_per_frame": g_ours, "transformers_gflop": g_ref,
                "masklab_s": t_ours, "transformers_s": t_ref, "masklab_gflop_s":
                g_ours / t_ours, "target_fps": target[fam],
                "needs_gflop_s": g_ours * target[fam],
                "fp32_bound_fps": rates["fp32"] / g_ours, "bf16_s": t_bf16})
    report("video_sam_flops", rows, {"matmul_gflop_s": rates, "frame": 8, "size": "854x480",
                                     "threads": torch.get_num_threads()})


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
    ap.add_argument("--flops", action="store_true",
                    help="arithmetic per frame against this machine's matrix-product rate")
    args = ap.parse_args()
    if args.flops:
        flops(args)
        return
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
