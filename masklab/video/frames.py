"""Random access to the frames of a video without holding the video in memory.

``VideoFrames`` reads a video file (PyAV), a folder of images (the DAVIS
``JPEGImages/480p/<seq>/`` layout: frames sorted by name), a list of arrays, or any sequence
that makes its frames when indexed. Frames are
decoded when asked for and only the last ``cache`` of them are kept. For a video file, one
pass over its packets (no decoding) finds every frame's timestamp; a frame is then read by
seeking to the key frame before it and decoding forward, so going backwards through a clip
costs one decode of the group of pictures per ``cache`` frames.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from masklab.errors import InputError


class VideoFrames:
    """``len(frames)``, ``frames[i]`` (RGB uint8 ``(H, W, 3)``), ``frames.names`` (one name
    per frame: the file stem, or ``00000``... for videos and arrays), ``frames.size``
    (``(H, W)``), ``frames.path`` (for messages; ``None`` for arrays)."""

    def __init__(self, source, *, cache: int = 32):
        from masklab.io.video import is_video

        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._capacity = max(1, int(cache))
        self._arrays = None
        self._files: list[Path] | None = None
        self._pts: list[int] = []
        self._keys: list[int] = []  # indices of key frames
        if isinstance(source, (str, os.PathLike)):
            self.path = Path(source)
            if self.path.is_dir():
                self._open_folder()
            elif not self.path.exists():
                raise InputError("no such video or folder", self.path)
            elif is_video(self.path):
                self._open_video()
            else:
                raise InputError("not a video file or a folder of frames", self.path)
        else:
            self.path = None
            # a list, or any sequence that makes frames when indexed (nothing is copied)
            self._arrays = source if hasattr(source, "__getitem__") and hasattr(
                source, "__len__") else list(source)
            if not len(self._arrays):
                raise InputError("no frames given")
            self.names = [f"{i:05d}" for i in range(len(self._arrays))]
        first = self[0]
        self.size: tuple[int, int] = first.shape[:2]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} of a {n}-frame video")
        i %= n
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        if self._arrays is not None:
            frame = _rgb(np.asarray(self._arrays[i]), f"frame {i}")
        elif self._files is not None:
            from masklab.io.images import read_image

            frame = read_image(self._files[i])
        else:
            return self._decode_to(i)
        if hasattr(self, "size") and frame.shape[:2] != self.size:
            raise InputError(f"frame {self.names[i]} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the video {self.size[1]}x{self.size[0]}", self.path)
        self._keep(i, frame)
        return frame

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # --- sources -------------------------------------------------------------------------
    def _open_folder(self) -> None:
        from masklab.io.images import IMAGE_EXTENSIONS

        self._files = sorted(p for p in self.path.iterdir()
                             if p.suffix.lower() in IMAGE_EXTENSIONS and not
                             p.name.startswith("."))
        if not self._files:
            raise InputError("no image frames in the folder", self.path)
        self.names = [p.stem for p in self._files]

    def _open_video(self) -> None:
        from masklab.io.video import _av

        av = _av()
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise InputError("has no video stream", self.path)
                stream = c.streams.video[0]
                packets = [(p.pts, p.is_keyframe) for p in c.demux(stream)
                           if p.pts is not None and p.size]
        except av.error.FFmpegError as e:
            raise InputError(f"not a readable video ({e})", self.path) from None
        if not packets:
            raise InputError("has no frames", self.path)
        packets.sort()
        self._pts = [p for p, _ in packets]
        self._keys = [i for i, (_, key) in enumerate(packets) if key] or [0]
        self.names = [f"{i:05d}" for i in range(len(packets))]

    def _decode_to(self, i: int) -> np.ndarray:
        """Seek to the key frame at or before frame ``i``, decode up to ``i``, keep the last
        ``cache`` decoded frames."""
        from masklab.io.video import _av

        av = _av()
        key = self._keys[bisect.bisect_right(self._keys, i) - 1]
        index = {p: k for k, p in enumerate(self._pts)}
        try:
            with av.open(str(self.path)) as c:
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                c.seek(self._pts[key], stream=stream, backward=True, any_frame=False)
                for frame in c.decode(stream):
                    k = index.get(frame.pts)
                    if k is None or k < key:
                        continue
                    if k >= i - self._capacity + 1:
                        self._keep(k, frame.to_ndarray(format="rgb24"))
                    if k >= i:
                        break
        except av.error.FFmpegError as e:
            raise InputError(f"video is corrupt near frame {i} ({e})", self.path) from None
        if i not in self._cache:
            raise InputError(f"frame {i} could not be decoded", self.path)
        return self._cache[i]

    def _keep(self, i: int, frame: np.ndarray) -> None:
        self._cache[i] = frame
        self._cache.move_to_end(i)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)


def _rgb(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
        raise InputError(f"{what} must be uint8 (H, W, 3), got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a[..., :3])
