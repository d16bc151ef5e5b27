"""Video files through PyAV (FFmpeg): frames streamed in, frames streamed out.

``read_video`` yields RGB uint8 frames one at a time (a whole video never sits in memory);
``VideoWriter`` encodes H.264 (MPEG-4 Part 2 where FFmpeg lacks libx264) into a temporary file
that replaces the target only when the writer closes without error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from masklab.errors import InputError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _av():
    try:
        import av
    except ImportError:
        raise InputError("video needs PyAV: pip install 'masklab[video]'") from None
    return av


def video_info(path: str | os.PathLike) -> dict:
    """``{"fps": Fraction, "frames": int or None, "width", "height"}`` of the first video
    stream."""
    av = _av()
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            return {"fps": Fraction(s.average_rate or 25), "frames": s.frames or None,
                    "width": s.codec_context.width, "height": s.codec_context.height}
    except (av.error.FFmpegError, IndexError) as e:
        raise InputError(f"not a readable video ({e})", path) from None


def read_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """RGB uint8 ``(H, W, 3)`` frames of the first video stream, in order."""
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise InputError(f"not a readable video ({e})", path) from None
    with container:
        if not container.streams.video:
            raise InputError("has no video stream", path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise InputError(f"video is corrupt ({e})", path) from None


class VideoWriter:
    """``with VideoWriter(path, fps) as w: w.write(rgb)``; written atomically on close."""

    def __init__(self, path: str | os.PathLike, fps=25, *, crf: int = 18):
        self.path, self.fps, self.crf = Path(path), Fraction(fps).limit_denominator(1001), crf
        self._container = self._stream = None
        self._tmp = None

    def __enter__(self) -> VideoWriter:
        return self

    def _open(self, h: int, w: int) -> None:
        import tempfile

        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp.mp4",
                                   dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        self._container = av.open(str(self._tmp), "w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=self.fps)
        self._stream.width, self._stream.height = w + w % 2, h + h % 2  # yuv420p: even
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(self.crf)}

    def write(self, frame: np.ndarray) -> None:
        av = _av()
        rgb = np.asarray(frame)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        h, w = rgb.shape[:2]
        if self._container is None:
            self._open(h, w)
        if (h + h % 2, w + w % 2) != (self._stream.height, self._stream.width):
            raise ValueError(f"frame is {w}x{h}, the video {self._stream.width}x"
                             f"{self._stream.height}")
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)

    def close(self, ok: bool = True) -> None:
        if self._container is None:
            return
        try:
            if ok:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
        if ok:
            from masklab.io.atomic import publish

            publish(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)
