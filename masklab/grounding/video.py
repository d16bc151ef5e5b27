"""Labelling a video with text prompts: detect on key frames, track in between.

Every ``key_every`` frames (and on the first) the text detector and the segmenter label the
frame as ``masklab label`` labels an image (the same post-processing). Each detection is
matched to the tracks propagated to that frame (mask IoU ≥ ``match_iou``, same class,
one-to-one, best first): a matched track is re-anchored on the detection's mask (the tracker
drifts; the detector does not), an unmatched detection starts a new track. Tracks run
forward from their first detection (an object that enters later is not tracked back into
frames before it was seen) with a ``masklab.video`` backend (``flow`` without weights, SAM
2.1 or EdgeTAM). A track keeps its id while its object is out of sight, so one object has
one track id over the video.

Output (``label_video``): ``annotations.json`` (COCO: one image per frame, one annotation per
track and frame with ``track_id``, its class, the ``score`` and ``prompt`` of the detection
that started it), ``Annotations/<video>/<frame>.png`` (DAVIS palette PNGs, pixel = track
id), ``overlay.mp4``, ``tracks.json`` (each track: class, first frame, the key frames that
confirmed it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from masklab.errors import InputError
from masklab.grounding.label import Labeller, LabelSettings


@dataclass
class VideoLabelResult:
    frames: int
    key_frames: int
    tracks: int
    annotations: int
    out: Path


def label_video(video, out: str | os.PathLike, settings: LabelSettings, *, tracker="flow",
                key_every: int = 10, match_iou: float = 0.5, detector=None, segmenter=None,
                device: str = "cpu", overlay: bool = True, quiet: bool | None = None,
                tracker_options: dict | None = None) -> VideoLabelResult:
    """Label ``video`` (a file, a folder of frames or arrays) into ``out`` (see the module
    docstring). ``tracker``: a ``masklab.video`` backend name or object."""
    from masklab.io.atomic import write_json
    from masklab.progress import progress
    from masklab.video.frames import VideoFrames
    from masklab.video.output import track_to_folder
    from masklab.video.session import VideoSession

    if key_every < 1:
        raise InputError(f"key_every must be at least 1, got {key_every}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InputError("the output folder is not empty", out)
    frames = video if isinstance(video, VideoFrames) else VideoFrames(video)
    if settings.captioner:
        raise InputError("--classes auto labels images, not videos: give the classes")
    labeller = Labeller(settings, detector=detector, segmenter=segmenter, device=device)
    if hasattr(labeller.det, "segment_text"):
        raise InputError("CLIPSeg gives one region per class, not objects to track: use a "
                         "detector")
    options = dict(tracker_options or {})
    if tracker != "flow" and isinstance(tracker, str):
        options.setdefault("device", device)
    session = VideoSession(frames, tracker, **options)
    n = len(frames)
    keys = list(range(0, n, key_every))
    info: dict[int, dict] = {}  # track id -> category, score, prompt
    confirmed: dict[int, list[int]] = {}
    for t in progress(keys, desc="detect", quiet=quiet, unit="key frame"):
        found = labeller.find(frames[t])  # as an image is labelled
        tracked = {}
        if session.objects:
            for _ in session.propagate(end=t, direction="forward"):
                pass
            current = session.masks(t)
            tracked = {int(k): m for k, m in zip(current.labels, current.to_dense(),
                                                 strict=True) if m.any()}
        pairs = []
        for i, (m, c, _, _, _) in enumerate(found):
            for k, tm in tracked.items():
                if info[k]["category_id"] != c:
                    continue
                iou = (m & tm).sum() / max(1, (m | tm).sum())
                if iou >= match_iou:
                    pairs.append((iou, i, k))
        used_d, used_t = set(), set()
        for _, i, k in sorted(pairs, reverse=True):
            if i in used_d or k in used_t:
                continue
            used_d.add(i)
            used_t.add(k)
            session.add_prompt(t, k, mask=found[i][0])  # re-anchored on the detection
            confirmed[k].append(t)
        for i, (m, c, score, _, prompt) in enumerate(found):
            if i in used_d:
                continue
            k = max(info, default=0) + 1
            if k > 255:
                raise InputError(f"more than 255 tracks by frame {t}: raise the thresholds "
                                 "or label a shorter clip", frames.path)
            session.add_prompt(t, k, mask=m)
            info[k] = {"category_id": c, "score": score, "prompt": prompt,
                       "source": labeller.source}
            confirmed[k] = [t]
    sequence = frames.path.stem if frames.path is not None and frames.path.is_file() else (
        frames.path.name if frames.path is not None else "video")
    out.mkdir(parents=True, exist_ok=True)
    track_to_folder(session, out, sequence=sequence, overlay=overlay, quiet=quiet,
                    tracks_path=out / "annotations.json", classes=settings.classes,
                    track_info=info, direction="forward")
    write_json(out / "tracks.json", {
        "video": str(frames.path) if frames.path is not None else None,
        "frames": n, "key_frames": keys, "classes": settings.classes,
        "settings": {"detector": settings.detector, "segmenter": settings.segmenter,
                     "tracker": tracker if isinstance(tracker, str) else
                     type(tracker).__name__, "key_every": key_every, "match_iou": match_iou},
        "tracks": [{"track_id": k, "category": settings.classes[v["category_id"] - 1],
                    "score": v["score"], "prompt": v["prompt"], "first_frame": confirmed[k][0],
                    "confirmed_on": confirmed[k]} for k, v in sorted(info.items())]},
        indent=1)
    return VideoLabelResult(n, len(keys), len(info), _count_annotations(out), out)


def _count_annotations(out: Path) -> int:
    import json

    return len(json.loads((out / "annotations.json").read_text(encoding="utf-8"))
               ["annotations"])
