"""``Keypoints``: N instances × K named points with visibility, plus a skeleton."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from masklab.types._meta import InstanceMeta, as_index, cat_meta
from masklab.types.boxes import Boxes

COCO_KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
# COCO's person skeleton, 0-based (the JSON stores it 1-based)
COCO_SKELETON = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
]


class Keypoints(InstanceMeta):
    """``(N, K, 3)`` float64 array of ``(x, y, v)``; ``v`` is COCO visibility (0 not labelled,
    1 labelled but hidden, 2 visible) or a confidence for predictions."""

    def __init__(self, data, *, names: Sequence[str] | None = None,
                 skeleton: Sequence[tuple[int, int]] | None = None, scores=None, labels=None,
                 track_ids=None, class_names=None):
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"keypoints must have shape (N, K, 3), got {arr.shape}")
        k = arr.shape[1]
        if names is not None and len(names) != k:
            raise ValueError(f"{len(names)} keypoint names for {k} keypoints")
        self.data = arr
        self.keypoint_names = None if names is None else [str(n) for n in names]
        self.skeleton = [] if skeleton is None else [(int(a), int(b)) for a, b in skeleton]
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"skeleton edge ({a}, {b}) out of range for {k} keypoints")
        self._set_meta(len(arr), scores, labels, track_ids, class_names)

    @classmethod
    def coco_person(cls, data, **meta) -> Keypoints:
        """COCO's 17 person keypoints, from ``(N, 17, 3)`` or COCO's flat 51-value lists."""
        arr = np.asarray(data, np.float64).reshape(-1, 17, 3)
        return cls(arr, names=COCO_KEYPOINT_NAMES, skeleton=COCO_SKELETON, **meta)

    @property
    def xy(self) -> np.ndarray:
        return self.data[..., :2]

    @property
    def visibility(self) -> np.ndarray:
        return self.data[..., 2]

    @property
    def num_keypoints(self) -> int:
        return self.data.shape[1]

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Keypoints(n={len(self)}, k={self.num_keypoints})"

    def _like(self, data: np.ndarray, meta: dict) -> Keypoints:
        return Keypoints(data, names=self.keypoint_names, skeleton=self.skeleton, **meta)

    def __getitem__(self, idx) -> Keypoints:
        index = as_index(idx, len(self))
        return self._like(self.data[index], self._meta_kwargs(index))

    @staticmethod
    def cat(parts: Sequence[Keypoints]) -> Keypoints:
        if not parts:
            raise ValueError("Keypoints.cat needs at least one Keypoints")
        return parts[0]._like(np.concatenate([p.data for p in parts]), cat_meta(parts))

    @property
    def boxes(self) -> Boxes:
        """Tight boxes around the labelled (``v > 0``) points; zeros where none is."""
        xyxy = np.zeros((len(self), 4))
        for i, inst in enumerate(self.data):
            pts = inst[inst[:, 2] > 0, :2]
            if len(pts):
                xyxy[i] = [*pts.min(axis=0), *pts.max(axis=0)]
        return Boxes(xyxy, **self._meta_kwargs())

    def to_coco(self) -> list[list[float]]:
        """COCO's flat ``[x0, y0, v0, x1, ...]`` list per instance."""
        return [inst.reshape(-1).tolist() for inst in self.data]
