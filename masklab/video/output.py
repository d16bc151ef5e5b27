"""Writing a tracked video: DAVIS annotations, an overlay video and COCO-style tracks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.types import Masks
from masklab.video.session import VideoSession


def track_to_folder(session: VideoSession, out: str | os.PathLike, *, sequence: str,
                    overlay: bool = True, fps: float = 24.0,
                    quiet: bool | None = None, frames_dir: str | os.PathLike | None = None,
                    overlay_path: str | os.PathLike | None = None,
                    tracks_path: str | os.PathLike | None = None,
                    classes: list[str] | None = None, track_info: dict | None = None,
                    direction: str = "both") -> list[Path]:
    """Propagate every object and write, frame by frame as each is final,
    ``out/Annotations/<sequence>/<frame>.png`` (DAVIS palette PNGs, object id = palette
    index); then ``out/overlay.mp4`` (with PyAV) and ``out/tracks.json`` (COCO instances:
    one image ``<sequence>/<frame>.jpg`` per frame, one annotation per object and frame with
    its RLE and ``track_id``; ``masklab convert`` turns it into DAVIS, YOLO or label PNGs).

    Each file is written atomically, so an interrupted run leaves the frames it finished
    readable. ``frames_dir``, ``overlay_path`` and ``tracks_path`` put those elsewhere (many
    sequences in one folder: ``masklab.video.batch``). ``classes`` and ``track_info``
    (track id → dict with ``category_id`` and any other fields, e.g. ``score``) give each
    track its category (``masklab label`` on a video); otherwise one category ``object``.
    """
    from masklab import viz
    from masklab.io.coco import write_coco
    from masklab.io.davis import write_frame
    from masklab.progress import progress

    out = Path(out)
    ann_dir = Path(frames_dir) if frames_dir is not None else out / "Annotations" / sequence
    overlay_path = Path(overlay_path) if overlay_path is not None else out / "overlay.mp4"
    tracks_path = Path(tracks_path) if tracks_path is not None else out / "tracks.json"
    names = session.frames.names
    h, w = session.frames.size
    written: list[Path] = []
    images, anns = [], []
    writer = None
    try:
        if overlay:
            writer = _overlay_writer(overlay_path, fps)
        def frames():  # every frame; one no object reaches (forward only) is empty
            nxt = 0
            for t, masks in (session.propagate(direction=direction) if session.objects
                             else ()):
                for g in range(nxt, t):
                    yield g, Masks(np.zeros((0, h, w), bool), labels=[])
                yield t, masks
                nxt = t + 1
            for g in range(nxt, len(names)):
                yield g, Masks(np.zeros((0, h, w), bool), labels=[])

        for t, masks in progress(frames(), desc=f"track {sequence}", total=len(names),
                                 quiet=quiet, unit="frame"):
            written.append(write_frame(ann_dir / f"{names[t]}.png", session.label_map(t)))
            images.append({"id": t + 1, "file_name": f"{sequence}/{names[t]}.jpg",
                           "height": h, "width": w, "frame": t})
            boxes = masks.boxes.xywh
            for k, (obj, rle) in enumerate(zip(masks.labels, masks.to_rle(), strict=True)):
                area = int(masks.area[k])
                if area == 0:
                    continue  # the object is out of sight on this frame
                anns.append({"id": len(anns) + 1, "image_id": t + 1, "category_id": 1,
                             "track_id": int(obj), "segmentation": rle, "area": area,
                             "bbox": boxes[k].tolist(), "iscrowd": 0,
                             **(track_info or {}).get(int(obj), {})})
            if writer is not None:
                writer.write(viz.overlay_masks(session.frames[t], masks, boxes=False,
                                                color_by="label"))
    except BaseException:
        if writer is not None:
            writer.close(ok=False)
        raise
    if writer is not None:
        writer.close()
        written.append(overlay_path)
    written.append(write_coco(tracks_path, {
        "images": images, "annotations": anns,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(classes or ["object"])],
        "videos": [{"name": sequence, "frames": len(names), "height": h, "width": w}]}))
    return written


def _overlay_writer(path: Path, fps: float):
    try:
        from masklab.io.video import VideoWriter, _av

        _av()
    except Exception:  # PyAV is optional: no overlay video without it
        return None
    return VideoWriter(path, fps=fps)
