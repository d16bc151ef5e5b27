"""Per-instance metadata shared by ``Masks``, ``Boxes`` and ``Keypoints``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_FIELDS = ("scores", "labels", "track_ids")


def as_index(idx, n: int) -> np.ndarray:
    """Normalise an int, slice, bool mask or integer sequence to an integer index array."""
    if isinstance(idx, (int, np.integer)):
        i = int(idx)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} instances")
        return np.array([i % n])
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    arr = np.asarray(idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"boolean index of shape {arr.shape} for {n} instances")
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise IndexError(f"cannot index instances with dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


class InstanceMeta:
    """Optional ``scores`` (float), ``labels`` (int), ``track_ids`` (int) and ``class_names``."""

    scores: np.ndarray | None
    labels: np.ndarray | None
    track_ids: np.ndarray | None
    class_names: list[str] | None

    def _set_meta(self, n: int, scores, labels, track_ids, class_names) -> None:
        self.scores = _column(scores, n, np.float64, "scores")
        self.labels = _column(labels, n, np.int64, "labels")
        self.track_ids = _column(track_ids, n, np.int64, "track_ids")
        self.class_names = None if class_names is None else [str(c) for c in class_names]

    def _meta_kwargs(self, index: np.ndarray | None = None) -> dict:
        out: dict = {"class_names": self.class_names}
        for name in _FIELDS:
            value = getattr(self, name)
            out[name] = value if value is None or index is None else value[index]
        return out

    @property
    def names(self) -> list[str] | None:
        """Class name of each instance (from ``labels`` and ``class_names``), if known."""
        if self.labels is None or self.class_names is None:
            return None
        k = len(self.class_names)
        return [self.class_names[i] if 0 <= i < k else str(i) for i in self.labels]


def cat_meta(parts: Sequence[InstanceMeta]) -> dict:
    """Concatenate the metadata of several instance sets; a field missing in any part is dropped."""
    out: dict = {}
    for name in _FIELDS:
        values = [getattr(p, name) for p in parts]
        ok = values and all(v is not None for v in values)
        out[name] = np.concatenate(values) if ok else None
    names = [p.class_names for p in parts if p.class_names is not None]
    out["class_names"] = names[0] if names else None
    return out


def _column(values, n: int, dtype, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries for {n} instances")
    return arr
