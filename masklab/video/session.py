"""Video object segmentation: prompts on any frame, propagation to every other frame.

    s = VideoSession("clip.mp4", backend="flow")        # or a folder of frames, or arrays
    s.add_prompt(0, obj_id=1, mask=first_mask)           # mask, points, box or scribbles
    s.add_prompt(0, obj_id=2, box=[10, 20, 200, 180])
    for t, masks in s.propagate():                       # Masks with labels = object ids
        ...
    s.add_prompt(40, obj_id=1, points=[[120, 90]], labels=[0])   # a correction
    s.propagate()                                        # redoes only what frame 40 changes

Each object's prompted frames are its anchors. A frame takes an object's mask from the
nearest anchor of that object (forward from the anchor before it, backward from the one
after it; ties go forward), so a prompt on frame k changes only the frames between the
object's neighbouring anchors, and ``propagate`` recomputes only frames whose source
changed. Results are kept as COCO RLE (a 10,000-frame session fits in memory) and frames
are decoded on demand (``VideoFrames``). Prompts have undo/redo as in ``Session``.
"""

from __future__ import annotations

import copy
import functools
import operator
from collections.abc import Iterator

import numpy as np

from masklab import rle as _rle
from masklab.errors import InputError
from masklab.types import Masks, Prompts
from masklab.video.frames import VideoFrames

VIDEO_BACKENDS = ("flow", "sam", "sam2.1-tiny", "sam2.1-small", "sam2.1-base-plus",
                  "sam2.1-large", "edgetam")


def make_video_backend(name, **options):
    """``flow`` (no weights), a SAM 2.1 / EdgeTAM name (``sam`` is SAM 2.1 Hiera-T), a local
    transformers folder of one of them, or a backend object (returned as is)."""
    from pathlib import Path

    if not isinstance(name, (str, Path)):
        return name
    if name == "flow":
        from masklab.video.flow import FlowTracker

        return FlowTracker(**options)
    from masklab.video.sam import VIDEO_WEIGHTS, SamVideoTracker

    if name in VIDEO_WEIGHTS:
        return SamVideoTracker(VIDEO_WEIGHTS[name], **options)
    if Path(name).is_dir():
        return SamVideoTracker(name, **options)
    raise InputError(f"unknown video backend {name!r}; one of {', '.join(VIDEO_BACKENDS)} "
                     "or a SAM 2 / EdgeTAM folder")


class VideoSession:
    """Promptable segmentation of one video (see the module docstring)."""

    def __init__(self, video, backend: str = "flow", *, image_backend: str = "grabcut",
                 cache: int = 32, **options):
        self.frames = video if isinstance(video, VideoFrames) else VideoFrames(video,
                                                                               cache=cache)
        self.backend = make_video_backend(backend, **options)
        self.image_backend = image_backend
        self._prompts: dict[int, dict[int, Prompts]] = {}  # object -> frame -> prompts
        self._anchors: dict[int, dict[int, dict]] = {}  # object -> frame -> RLE
        self._looks: dict[int, dict[int, object]] = {}  # object -> frame -> appearance
        self._results: dict[int, dict[int, dict]] = {}  # frame -> object -> RLE
        self._source: dict[int, dict[int, int]] = {}  # frame -> object -> anchor used
        self._undo: list[tuple] = []
        self._redo: list[tuple] = []

    # --- prompts -----------------------------------------------------------------------
    @property
    def objects(self) -> list[int]:
        return sorted(self._anchors)

    def add_prompt(self, frame: int, obj_id: int = 1, *, points=None, labels=None, box=None,
                   mask=None, scribbles=None) -> Masks:
        """Add prompts for ``obj_id`` on ``frame`` (accumulating with earlier ones there) and
        return that object's mask on the frame."""
        frame = self._frame_index(frame)
        if int(obj_id) < 1 or int(obj_id) > 255:
            raise InputError(f"object ids are 1..255, got {obj_id}")
        h, w = self.frames.size
        if mask is not None and np.asarray(mask).shape != (h, w):
            m = np.asarray(mask)
            raise InputError(f"mask is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]}, the "
                             f"video {w}x{h}")
        old = self._prompts.get(obj_id, {}).get(frame, Prompts())
        pts = np.zeros((0, 2)) if points is None else np.asarray(points, float).reshape(-1, 2)
        labs = np.ones(len(pts), np.int64) if labels is None else \
            np.asarray(labels, np.int64).reshape(-1)
        new = Prompts(points=np.vstack([old.points, pts]),
                      point_labels=np.concatenate([old.point_labels, labs]),
                      box=box if box is not None else old.box,
                      mask=np.asarray(mask, bool) if mask is not None else old.mask,
                      scribbles=list(old.scribbles) + list(scribbles or []))
        if new.is_empty():
            raise InputError("no prompt given")
        new, _ = new.fit_to(h, w)
        look = None
        if getattr(self.backend, "stateful", False):  # SAM 2: the model reads the prompt
            anchor, look = self.backend.prompt(self.frames, frame, new)
        else:
            anchor = self._anchor_mask(frame, new, obj_id)
        if new.is_mask_only() and not anchor.any():
            raise InputError(f"the mask of object {obj_id} on frame {frame} is empty")
        self._checkpoint()
        self._prompts.setdefault(obj_id, {})[frame] = new
        self._anchors.setdefault(obj_id, {})[frame] = _rle.encode(anchor)[0]
        if look is not None:
            self._looks.setdefault(obj_id, {})[frame] = look
        elif hasattr(self.backend, "appearance"):  # what the object looks like, for the backend
            self._looks.setdefault(obj_id, {})[frame] = self.backend.appearance(
                self.frames[frame], anchor)
        self._forget(obj_id, frame)
        return Masks(anchor[None], labels=[obj_id])

    def remove_object(self, obj_id: int) -> None:
        if obj_id not in self._anchors:
            raise InputError(f"unknown object id {obj_id}; objects are {self.objects}")
        self._checkpoint()
        self._prompts.pop(obj_id, None)
        self._anchors.pop(obj_id)
        self._looks.pop(obj_id, None)
        self._forget(obj_id)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._state())
        self._restore(self._undo.pop())
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._state())
        self._restore(self._redo.pop())
        return True

    # --- propagation -------------------------------------------------------------------
    def propagate(self, start: int | None = None, end: int | None = None,
                  direction: str = "both") -> Iterator[tuple[int, Masks]]:
        """Propagate every object over frames ``start..end`` (inclusive; all by default),
        yielding ``(frame, Masks)`` in frame order as each frame is final, for the frames
        some object reaches in ``direction``. Frames whose result is already computed from
        the same anchor are not recomputed."""
        if direction not in ("both", "forward", "backward"):
            raise ValueError(f"direction must be both, forward or backward, got {direction!r}")
        if not self._anchors:
            raise InputError("no object has a prompt yet")
        n = len(self.frames)
        lo = 0 if start is None else self._frame_index(start)
        hi = n - 1 if end is None else self._frame_index(end)
        if lo > hi:
            raise InputError(f"start frame {lo} is after end frame {hi}")
        plan = {obj: self._plan(obj, lo, hi, direction) for obj in self._anchors}
        # a chain that enters lo..hi starts at its anchor, which may lie outside
        used = [a for p in plan.values() for a, _ in p.values()]
        first, last = min([lo, *used]), max([hi, *used])
        plan = {obj: self._plan(obj, first, last, direction) for obj in self._anchors}
        # backward sweep first; every frame is yielded once, in order, by the forward sweep
        for _ in self._sweep(plan, range(last, first - 1, -1), backward=True):
            pass
        for t, masks in self._sweep(plan, range(first, last + 1), backward=False):
            if lo <= t <= hi and any(t in p for p in plan.values()):
                yield t, masks

    def discover(self, *, max_objects: int = 20, every: int = 10, min_area: float = 0.002,
                 cover: float = 0.5) -> list[int]:
        """Unsupervised: find the objects that move against the camera on the first frame
        (``masklab.video.discover.moving_regions``, on optical flow whatever the
        backend), track them with the backend (a SAM backend takes each region as a mask
        prompt), and every ``every`` frames
        add the moving regions that no track covers (less than ``cover`` of the region
        inside a tracked mask), up to ``max_objects`` in all. Returns the new object ids;
        ``propagate`` then gives every frame."""
        from masklab.video.discover import moving_regions

        flow = getattr(self.backend, "flow", None)
        if flow is None:  # a SAM backend tracks; motion still comes from optical flow
            from masklab.video.flow import FlowTracker

            flow = FlowTracker().flow
        n = len(self.frames)
        added: list[int] = []
        for t in range(0, max(1, n - 1), max(1, every)):
            if len(self._anchors) >= max_objects:
                break
            following = self.frames[t + 1] if t + 1 < n else self.frames[t]
            found = moving_regions(self.frames[t], following, flow,
                                   min_area=min_area, max_objects=max_objects)
            if self._anchors:
                for _ in self.propagate(end=t):
                    pass
                tracked = self.label_map(t) > 0
                found = [m for m in found if (m & tracked).sum() < cover * m.sum()]
            for m in found[:max_objects - len(self._anchors)]:
                obj = max(self._anchors, default=0) + 1
                self.add_prompt(t, obj, mask=m)
                added.append(obj)
        return added

    def masks(self, frame: int) -> Masks:
        """The objects' masks on ``frame`` as last propagated (labels = object ids)."""
        frame = self._frame_index(frame)
        got = self._results.get(frame, {})
        h, w = self.frames.size
        ids = sorted(got)
        if not ids:
            return Masks(np.zeros((0, h, w), bool))
        return Masks.from_rle([got[i] for i in ids], labels=ids)

    def label_map(self, frame: int) -> np.ndarray:
        """``(H, W)`` uint8 object ids on ``frame`` (0 background; later ids on top)."""
        out = np.zeros(self.frames.size, np.uint8)
        masks = self.masks(frame)
        if not len(masks):  # no object on this frame (none reaches it)
            return out
        for k, m in zip(masks.labels, masks.to_dense(), strict=True):
            out[m] = k
        return out

    # --- internals ---------------------------------------------------------------------
    def _frame_index(self, frame: int) -> int:
        n = len(self.frames)
        if not 0 <= int(frame) < n:
            raise InputError(f"frame {frame} is past the end of the {n}-frame video",
                             self.frames.path)
        return int(frame)

    def _anchor_mask(self, frame: int, prompts: Prompts, obj: int) -> np.ndarray:
        if prompts.is_mask_only():
            return prompts.mask.astype(bool)
        correction = (prompts.mask is not None and len(prompts.points)
                      and prompts.box is None and not prompts.scribbles)
        if correction and hasattr(self.backend, "correct") and self._looks.get(obj):
            # clicks on a mask the session made: the backend corrects it with what it knows
            # of the object (its colours); an image backend would start from scratch
            look = functools.reduce(operator.add, self._looks[obj].values())
            return self.backend.correct(self.frames[frame], prompts.mask.astype(bool),
                                        prompts.points, prompts.point_labels, look)
        from masklab.interactive import Session

        return Session(self.frames[frame], self.image_backend).predict(
            prompts=prompts).to_dense()[0]

    def _plan(self, obj: int, lo: int, hi: int, direction: str) -> dict[int, tuple[int, int]]:
        """frame -> (anchor, step direction) for every frame of ``lo..hi`` this object
        covers: the nearest anchor, ties forward."""
        anchors = sorted(self._anchors[obj])
        out: dict[int, tuple[int, int]] = {}
        for t in range(lo, hi + 1):
            before = [a for a in anchors if a <= t]
            after = [a for a in anchors if a > t]
            cands = []
            if before and direction in ("both", "forward"):
                cands.append((t - before[-1], 0, before[-1], +1))
            if after and direction in ("both", "backward"):
                cands.append((after[0] - t, 1, after[0], -1))
            if before and before[-1] == t:
                cands = [(0, 0, t, 0)]
            if cands:
                _, _, a, d = min(cands)
                out[t] = (a, d)
        return out

    def _sweep(self, plan, frames, backward: bool):
        step = -1 if backward else +1
        carried: dict[int, np.ndarray] = {}  # object -> mask on the previous frame
        for t in frames:
            todo = {}
            for obj, p in plan.items():
                if t not in p:
                    carried.pop(obj, None)
                    continue
                anchor, d = p[t]
                if d == 0:  # the prompted frame: its mask is the anchor's
                    if self._source.get(t, {}).get(obj) != anchor:
                        self._results.setdefault(t, {})[obj] = self._anchors[obj][anchor]
                        self._source.setdefault(t, {})[obj] = anchor
                    carried.pop(obj, None)
                elif d == step:
                    if self._source.get(t, {}).get(obj) == anchor and obj not in carried:
                        continue  # computed before from this anchor: nothing changed
                    if obj not in carried:  # the chain resumes from a stored result
                        carried[obj] = self._dense(t - d, obj)
                    todo[obj] = carried[obj]
                else:
                    carried.pop(obj, None)
            if todo and getattr(self.backend, "stateful", False):
                jobs = {obj: (plan[obj][t][0], step, self._looks[obj][plan[obj][t][0]])
                        for obj in todo}
                for obj, m in self.backend.track(self.frames, t, jobs).items():
                    carried[obj] = m
                    self._store(t, obj, plan[obj][t][0], m)
            elif todo:
                looks = {obj: functools.reduce(operator.add, self._looks[obj].values())
                         for obj in todo if self._looks.get(obj)}
                moved = self.backend.step(self.frames[t - step], self.frames[t], todo,
                                          looks or None)
                for obj, m in moved.items():
                    carried[obj] = m
                    self._store(t, obj, plan[obj][t][0], m)
            if not backward:
                yield t, self.masks(t)

    def _dense(self, t: int, obj: int) -> np.ndarray:
        return _rle.decode([self._results[t][obj]])[0]

    def _store(self, t: int, obj: int, anchor: int, mask: np.ndarray) -> None:
        self._results.setdefault(t, {})[obj] = _rle.encode(mask)[0]
        self._source.setdefault(t, {})[obj] = anchor

    def _forget(self, obj: int, anchor: int | None = None) -> None:
        """Drop the object's results (those propagated from ``anchor`` only, when given).
        Results whose nearest anchor changes are recomputed by ``propagate``, which compares
        each frame's stored anchor with its plan."""
        for t, src in self._source.items():
            if obj in src and (anchor is None or src[obj] == anchor):
                del src[obj]
                self._results[t].pop(obj, None)

    def _state(self) -> tuple:
        return copy.deepcopy((self._prompts, self._anchors, self._looks))

    def _checkpoint(self) -> None:
        self._undo.append(self._state())
        self._redo.clear()

    def _restore(self, state: tuple) -> None:
        self._prompts, self._anchors, self._looks = state
        self._results.clear()
        self._source.clear()
