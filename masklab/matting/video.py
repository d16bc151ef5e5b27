"""Background replacement for a whole video, streamed frame by frame.

Each frame is matted against the clean plate (``masklab.matting.background``). The trimap of
frame ``t`` comes from the plate difference smoothed over time — an exponential moving
average ``D_t = s·D_{t−1} + (1−s)·d_t`` with ``smoothing`` = s — so the unknown band does not
flicker with sensor noise; the alpha is then solved per frame (closed-form, KNN or ViTMatte,
optionally coarse-to-fine), its foreground colours estimated, and the frame composited onto
the new background. Only the current frame and the running average are held in memory.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np


def matte_video(video: str | os.PathLike, plate: np.ndarray, out: str | os.PathLike, *,
                new_background="blur", solver: str = "cf", coarse_to_fine: bool = False,
                smoothing: float = 0.5, band: int | None = None, jitter: int = 1,
                alpha_video: bool = True, quiet: bool | None = None, **options) -> dict:
    """Write ``out/composite.mp4`` (and ``out/alpha.mp4``); returns ``{"frames", "fps"}``.

    ``plate``: the clean background (an image of the frame size); ``new_background``: an
    image, an RGB colour or ``"blur"`` (see ``background_like``); ``smoothing`` in [0, 1).
    """
    from masklab.errors import InputError
    from masklab.io.video import VideoWriter, read_video, video_info
    from masklab.matting import composite, estimate_alpha, estimate_foreground
    from masklab.matting.background import plate_difference, trimap_from_distance
    from masklab.matting.closed_form import as_float_rgb
    from masklab.progress import progress

    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    info = video_info(video)
    if (info["height"], info["width"]) != tuple(np.asarray(plate).shape[:2]):
        raise InputError(f"the video is {info['width']}x{info['height']}, the plate "
                         f"{np.asarray(plate).shape[1]}x{np.asarray(plate).shape[0]}", video)
    plate_f = as_float_rgb(plate)
    out = Path(out)
    running = None
    n = 0
    with contextlib.ExitStack() as stack:  # both files are kept only if every frame is done
        comp_writer = stack.enter_context(VideoWriter(out / "composite.mp4", info["fps"]))
        alpha_writer = stack.enter_context(VideoWriter(out / "alpha.mp4", info["fps"])) \
            if alpha_video else None
        for frame in progress(read_video(video), total=info["frames"], unit="frame",
                              desc="matting frames", quiet=quiet):
            d = plate_difference(frame, plate_f, jitter=jitter)
            running = d if running is None else smoothing * running + (1 - smoothing) * d
            tri, mask = trimap_from_distance(running, band=band)
            alpha = estimate_alpha(frame, tri, solver, coarse_to_fine=coarse_to_fine,
                                   **options) if mask.any() else np.zeros(d.shape)
            fg = estimate_foreground(frame, alpha)
            comp_writer.write(composite(fg, alpha, new_background))
            if alpha_writer is not None:
                alpha_writer.write(np.round(alpha * 255).astype(np.uint8))
            n += 1
    if n == 0:
        raise InputError("has no frames", video)
    return {"frames": n, "fps": float(info["fps"])}
