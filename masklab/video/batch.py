"""Tracking many videos: every sequence of a DAVIS folder, semi-supervised (its first
annotated frame gives the objects) or unsupervised (``discover``).

Results go where the DAVIS tools look for them: ``OUT/<sequence>/<frame>.png`` (palette PNGs,
so ``masklab eval davis --results OUT`` scores the run), with ``OUT/tracks/<sequence>.json``
(COCO tracks) and, optionally, ``OUT/overlays/<sequence>.mp4``. The backend is loaded once
and its memory cleared between sequences. A ``masklab.manifest.RunManifest`` makes the run
resumable one sequence at a time; ``masklab.scale.ray_engine`` spreads the sequences over a
Ray cluster with the same per-sequence function.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError


def prompt_objects(ids: np.ndarray, source) -> dict[int, np.ndarray]:
    """Object masks of an annotation (DAVIS: each non-zero value is an object id, 255 void;
    a binary 0/255 mask is one object)."""
    values = [int(k) for k in np.unique(ids) if k]
    if values == [255]:  # a binary 0/255 mask (DAVIS 2016): one object
        return {1: ids == 255}
    objects = [k for k in values if k != 255]  # else 255 is void (DAVIS 2017)
    if not objects:
        raise InputError("the mask is empty (no object id)", source)
    return {k: ids == k for k in objects}


def load_video_backend(backend: str = "flow", device: str = "cpu"):
    from masklab.video.session import make_video_backend

    return make_video_backend(backend, **({} if backend == "flow" else {"device": device}))


def track_sequence(model, frames_dir, image_id: int, out, *, annotations=None,
                   unsupervised: bool = False, max_objects: int = 20,
                   image_backend: str = "grabcut", overlay: bool = False) -> dict:
    """One sequence (a folder of frames): prompts from the first frame of ``annotations``
    (its folder of PNGs; by default the DAVIS layout's ``Annotations/<res>/<seq>`` beside
    ``JPEGImages/<res>/<seq>``), or discovered; the frames, tracks (and overlay) written; its
    manifest row returned. ``image_id`` is unused (the per-file worker's signature)."""
    from masklab.io.images import read_label_png
    from masklab.video.output import track_to_folder
    from masklab.video.session import VideoSession

    frames_dir, out = Path(frames_dir), Path(out)
    seq = frames_dir.name
    if annotations is None and not unsupervised:
        annotations = frames_dir.parents[2] / "Annotations" / frames_dir.parent.name / seq
    if hasattr(model, "forget"):
        model.forget()  # the previous sequence's memory
    session = VideoSession(frames_dir, model, image_backend=image_backend)
    if unsupervised:
        session.discover(max_objects=max_objects)
    else:
        first = sorted(Path(annotations).glob("*.png"))
        if not first:
            raise InputError("no PNG annotations", annotations)
        ids = read_label_png(first[0])
        if ids.shape != session.frames.size:
            raise InputError(f"annotation is {ids.shape[1]}x{ids.shape[0]}, the frames "
                             f"{session.frames.size[1]}x{session.frames.size[0]}", first[0])
        frame = session.frames.names.index(first[0].stem) \
            if first[0].stem in session.frames.names else 0
        for k, m in prompt_objects(ids, first[0]).items():
            session.add_prompt(frame, k, mask=m)
    track_to_folder(session, out, sequence=seq, overlay=overlay, quiet=True,
                    frames_dir=out / seq, overlay_path=out / "overlays" / f"{seq}.mp4",
                    tracks_path=out / "tracks" / f"{seq}.json")
    return {"sequence": seq, "frames": len(session.frames),
            "objects": sorted(int(k) for k in session.objects)}


def davis_jobs(root, *, sequences=None, subset: str | None = None,
               resolution: str = "480p", year: str = "2017") -> list[tuple[Path, Path]]:
    """``(frames folder, annotations folder)`` of the sequences asked for: ``sequences``, else
    ``ImageSets/<year>/<subset>.txt``, else every annotated sequence."""
    from masklab.io.davis import annotations_dir, list_sequences

    root = Path(root)
    if sequences:
        seqs = list(sequences)
    elif subset and (root / "ImageSets" / year / f"{subset}.txt").is_file():
        listing = root / "ImageSets" / year / f"{subset}.txt"
        seqs = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    else:
        seqs = list_sequences(root, resolution)
    jobs = []
    for seq in seqs:
        frames = root / "JPEGImages" / resolution / seq
        if not frames.is_dir():
            raise InputError(f"no frames for sequence {seq}", root)
        jobs.append((frames, annotations_dir(root, resolution) / seq))
    return jobs


def track_davis(root, out: str | os.PathLike, *, backend: str = "flow", device: str = "cpu",
                sequences=None, subset: str | None = None, resolution: str = "480p",
                unsupervised: bool = False, max_objects: int = 20,
                image_backend: str = "grabcut", overlay: bool = False,
                quiet: bool | None = None, manifest=None) -> list[dict]:
    """Track every sequence asked for (see the module docstring); the rows in order."""
    from masklab.manifest import key, run_pending

    jobs = davis_jobs(root, sequences=sequences, subset=subset, resolution=resolution)
    keys = [key(f) for f, _ in jobs]
    model = []  # loaded for the first sequence to do

    def work(i):
        if not model:
            model.append(load_video_backend(backend, device))
        frames, ann = jobs[i]
        return track_sequence(model[0], frames, i + 1, out, annotations=ann,
                              unsupervised=unsupervised, max_objects=max_objects,
                              image_backend=image_backend, overlay=overlay)

    return run_pending(keys, work, manifest, desc="track", quiet=quiet, unit="video")
