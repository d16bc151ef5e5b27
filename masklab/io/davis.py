"""DAVIS folders: ``Annotations/<res>/<sequence>/<frame>.png`` palette PNGs of object ids
(0 background, 255 void) beside ``JPEGImages/<res>/<sequence>/<frame>.jpg``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.io.images import read_label_png, write_label_png
from masklab.types.semantic import default_palette

DAVIS_PALETTE = default_palette(256)  # DAVIS uses the VOC colour map


def annotations_dir(root: str | os.PathLike, resolution: str = "480p") -> Path:
    return Path(root) / "Annotations" / resolution


def list_sequences(root: str | os.PathLike, resolution: str = "480p") -> list[str]:
    """Sequence names under ``root/Annotations/<resolution>``."""
    d = annotations_dir(root, resolution)
    if not d.is_dir():
        raise InputError(f"not a DAVIS folder (no Annotations/{resolution})", root)
    return sorted(p.name for p in d.iterdir() if p.is_dir())


def read_sequence(folder: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Frame names and a ``(T, H, W)`` uint8 array of object ids from a folder of PNGs."""
    folder = Path(folder)
    files = sorted(folder.glob("*.png"))
    if not files:
        raise InputError("no PNG frames", folder)
    frames = [read_label_png(f) for f in files]
    shape = frames[0].shape
    for f, fr in zip(files, frames, strict=True):
        if fr.shape != shape:
            raise InputError(f"frame is {fr.shape[1]}x{fr.shape[0]}, expected "
                             f"{shape[1]}x{shape[0]}", f)
    return [f.stem for f in files], np.stack(frames)


def write_frame(path: str | os.PathLike, ids: np.ndarray) -> Path:
    """Write one frame of object ids as a DAVIS palette PNG (atomic)."""
    ids = np.asarray(ids)
    if ids.size and ids.max() > 255:
        raise ValueError("DAVIS frames hold at most 255 object ids")
    return write_label_png(path, ids.astype(np.uint8), palette=DAVIS_PALETTE)
