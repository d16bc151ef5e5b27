"""Interactive video object segmentation: a simulated user correcting a propagation.

In the spirit of the DAVIS interactive benchmark (Caelles et al., 2018), with clicks for
scribbles: interaction 1 gives each object its bounding box and its deepest interior point
(the image click simulator's first click) on the frame where the object is largest; every
next interaction finds the frame with the worst mean J, and there the object with the worst
J gets the image simulator's next click (positive in a missed region, negative in a false
one, at the interior point farthest from the error's boundary), given together with the
current mask; then the session propagates again. J and F are computed over every frame after
each interaction. Reported: J&F per interaction, the area under the J&F-vs-interactions
curve (trapezoids, normalised to [0, 1]) and J&F after 8 interactions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from masklab.metrics.interactive import next_click


def score_sequence(gt_ids: np.ndarray, res_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-object, per-frame J and F ``(N, T)`` for ``(T, H, W)`` id maps (objects 1..N of
    the ground truth), over every frame."""
    from masklab.metrics.video import _object_scores

    gt_ids = np.ascontiguousarray(gt_ids, np.uint8)
    res_ids = np.ascontiguousarray(res_ids, np.uint8)
    n_gt, n_res = int(gt_ids.max(initial=0)), int(res_ids.max(initial=0))
    scores = _object_scores(gt_ids, res_ids, None, n_gt, n_res,
                            [(i, i) for i in range(1, n_gt + 1)])
    j = np.stack([scores[(i, i)][0] for i in range(1, n_gt + 1)])
    f = np.stack([scores[(i, i)][1] for i in range(1, n_gt + 1)])
    return j, f


def simulate_video(session, gt_ids: np.ndarray, *, interactions: int = 8
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Run the simulated user on a ``VideoSession`` with no prompts yet against ``(T, H, W)``
    ground-truth ids (1..N); returns mean J and mean F after each interaction."""
    gt_ids = np.asarray(gt_ids, np.uint8)
    objects = list(range(1, int(gt_ids.max(initial=0)) + 1))
    if not objects:
        raise ValueError("the ground truth has no object")
    clicked: dict[tuple[int, int], np.ndarray] = {}
    for obj in objects:
        areas = (gt_ids == obj).sum(axis=(1, 2))
        t = int(np.argmax(areas))
        m = gt_ids[t] == obj
        ys, xs = np.nonzero(m)
        x, y, _ = next_click(m, np.zeros_like(m))
        clicked[(t, obj)] = _dot(m.shape, x, y)
        session.add_prompt(t, obj, points=[[x, y]], labels=[1],
                           box=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    js, fs = [], []
    for k in range(interactions):
        res = _propagated(session, gt_ids.shape)
        j, f = score_sequence(gt_ids, res)
        js.append(j.mean())
        fs.append(f.mean())
        if k == interactions - 1:
            break
        t = int(np.argmin(j.mean(axis=0)))
        obj = objects[int(np.argmin(j[:, t]))]
        gt, pred = gt_ids[t] == obj, res[t] == obj
        seen = clicked.setdefault((t, obj), np.zeros(gt.shape, bool))
        c = next_click(gt, pred, seen)
        if c is None:  # the worst frame is perfect: so is every frame
            js += [js[-1]] * (interactions - len(js))
            fs += [fs[-1]] * (interactions - len(fs))
            break
        x, y, positive = c
        seen |= _dot(gt.shape, x, y)
        session.add_prompt(t, obj, points=[[x, y]], labels=[int(positive)],
                           mask=pred if pred.any() else None)
    return np.array(js), np.array(fs)


def _dot(shape, x: float, y: float) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[int(y), int(x)] = True
    return m


def _propagated(session, shape) -> np.ndarray:
    res = np.zeros(shape, np.uint8)
    for t, _ in session.propagate():
        res[t] = session.label_map(t)
    return res


@dataclass
class VideoInteractiveResult:
    j: np.ndarray  # mean J after each interaction
    f: np.ndarray
    sequences: int

    @property
    def jf(self) -> np.ndarray:
        return (self.j + self.f) / 2

    @property
    def auc(self) -> float:
        """Area under J&F vs interactions 1..N (trapezoids), divided by N − 1."""
        jf = self.jf
        if len(jf) == 1:
            return float(jf[0])
        return float((jf[:-1] + jf[1:]).sum() / 2 / (len(jf) - 1))

    def jf_at(self, k: int) -> float:
        return float(self.jf[min(k, len(self.jf)) - 1])

    def to_dict(self) -> dict:
        return {"J&F_per_interaction": [float(v) for v in self.jf],
                "J_per_interaction": [float(v) for v in self.j],
                "F_per_interaction": [float(v) for v in self.f],
                "AUC": self.auc, "J&F@8": self.jf_at(8), "sequences": self.sequences}


class VideoInteractiveEvaluator:
    """Mergeable: ``update`` with one sequence's J and F curves; ``compute`` averages."""

    def __init__(self, interactions: int = 8):
        self.interactions = interactions
        self.curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def update(self, name: str, j: np.ndarray, f: np.ndarray) -> VideoInteractiveEvaluator:
        if len(j) != self.interactions or len(f) != self.interactions:
            raise ValueError(f"expected {self.interactions} values per curve")
        self.curves[name] = (np.asarray(j, np.float64), np.asarray(f, np.float64))
        return self

    def merge(self, other: VideoInteractiveEvaluator) -> VideoInteractiveEvaluator:
        if other.interactions != self.interactions:
            raise ValueError("cannot merge evaluators with different interaction counts")
        self.curves.update(other.curves)
        return self

    def compute(self) -> VideoInteractiveResult:
        if not self.curves:
            raise ValueError("no sequences evaluated")
        j = np.mean([c[0] for c in self.curves.values()], axis=0)
        f = np.mean([c[1] for c in self.curves.values()], axis=0)
        return VideoInteractiveResult(j, f, len(self.curves))


def _davis_interactive_shard(seqs: list, root: str, backend: str, interactions: int,
                             resolution: str, quiet, device: str = "cpu"
                             ) -> VideoInteractiveEvaluator:
    from pathlib import Path

    from masklab.errors import InputError
    from masklab.io.davis import annotations_dir, read_sequence
    from masklab.progress import progress
    from masklab.video import VideoSession
    from masklab.video.batch import load_video_backend

    root = Path(root)
    model = load_video_backend(backend, device)  # once for all the shard's sequences
    ev = VideoInteractiveEvaluator(interactions)
    for seq in progress(seqs, desc="interactive J&F", quiet=quiet):
        frames_dir = root / "JPEGImages" / resolution / seq
        _, ids = read_sequence(annotations_dir(root, resolution) / seq)
        ids = (ids == 255).astype(np.uint8) if set(np.unique(ids)) <= {0, 255} else \
            np.where(ids == 255, 0, ids).astype(np.uint8)
        if hasattr(model, "forget"):
            model.forget()  # the previous sequence's memory
        session = VideoSession(frames_dir, model)
        if len(session.frames) != len(ids):
            raise InputError(f"sequence {seq}: {len(session.frames)} frames, "
                             f"{len(ids)} annotations", root)
        ev.update(seq, *simulate_video(session, ids, interactions=interactions))
    return ev


def evaluate_davis_interactive(davis_root, *, sequences=None, backend: str = "flow",
                               interactions: int = 8, resolution: str = "480p",
                               quiet: bool | None = None, runner=None, device: str = "cpu"
                               ) -> VideoInteractiveResult:
    """The simulated user on each sequence of a DAVIS folder (``JPEGImages/<res>/<seq>`` and
    ``Annotations/<res>/<seq>``; a 0/255 annotation is one object, otherwise 255 is void).
    ``runner``: where shards of sequences are evaluated (``masklab.metrics._shards``);
    ``device``: where a SAM backend runs (each Ray worker's own device with a runner)."""
    from pathlib import Path

    from masklab.errors import InputError
    from masklab.io.davis import annotations_dir, list_sequences
    from masklab.metrics._shards import merged

    root = Path(davis_root)
    seqs = list(sequences) if sequences else list_sequences(root, resolution)
    for seq in seqs:
        if not (annotations_dir(root, resolution) / seq).is_dir():
            raise InputError(f"no annotations for sequence {seq}", root)
    VideoInteractiveEvaluator(interactions)
    return merged(_davis_interactive_shard, seqs, str(root), backend, interactions,
                  resolution, quiet, device, runner=runner)
