"""Axis-aligned boxes in pixel coordinates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from masklab.types._meta import InstanceMeta, as_index, cat_meta


class Boxes(InstanceMeta):
    """N boxes stored as ``xyxy`` float64 (x0, y0, x1, y1), with optional per-box metadata.

    Coordinates are continuous: a box covering pixel columns 3..5 is ``x0=3, x1=6`` (COCO's and
    torchvision's convention; width is ``x1 - x0``).
    """

    def __init__(self, xyxy, *, scores=None, labels=None, track_ids=None, class_names=None):
        arr = np.asarray(xyxy, dtype=np.float64)
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("boxes contain NaN or infinite coordinates")
        self.xyxy = arr
        self._set_meta(len(arr), scores, labels, track_ids, class_names)

    # --- conversions -------------------------------------------------------------------
    @classmethod
    def from_xywh(cls, xywh, **meta) -> Boxes:
        """From COCO ``(x, y, w, h)`` boxes."""
        b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
        return cls(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1), **meta)

    @classmethod
    def from_cxcywh(cls, cxcywh, **meta) -> Boxes:
        """From centre/size ``(cx, cy, w, h)`` boxes (YOLO, DETR)."""
        b = np.asarray(cxcywh, dtype=np.float64).reshape(-1, 4)
        half = b[:, 2:] / 2
        return cls(np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1), **meta)

    @property
    def xywh(self) -> np.ndarray:
        b = self.xyxy
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)

    @property
    def cxcywh(self) -> np.ndarray:
        b = self.xyxy
        return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    # --- container protocol ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, idx) -> Boxes:
        index = as_index(idx, len(self))
        return Boxes(self.xyxy[index], **self._meta_kwargs(index))

    def __repr__(self) -> str:
        return f"Boxes(n={len(self)})"

    @staticmethod
    def cat(parts: Sequence[Boxes]) -> Boxes:
        """Concatenate box sets."""
        xyxy = np.concatenate([p.xyxy for p in parts]) if parts else np.zeros((0, 4))
        return Boxes(xyxy, **cat_meta(parts))

    # --- geometry ----------------------------------------------------------------------
    def iou(self, other: Boxes) -> np.ndarray:
        """Pairwise IoU, shape ``(len(self), len(other))``; 0 where the union is empty."""
        inter, union = _inter_union(self.xyxy, other.xyxy)
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def giou(self, other: Boxes) -> np.ndarray:
        """Pairwise generalised IoU (Rezatofighi et al., CVPR 2019), in [-1, 1]."""
        a, b = self.xyxy, other.xyxy
        inter, union = _inter_union(a, b)
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        lt = np.minimum(a[:, None, :2], b[None, :, :2])
        rb = np.maximum(a[:, None, 2:], b[None, :, 2:])
        wh = np.clip(rb - lt, 0, None)
        hull = wh[..., 0] * wh[..., 1]
        penalty = np.divide(hull - union, hull, out=np.zeros_like(hull), where=hull > 0)
        return iou - penalty

    def clip(self, height: int, width: int) -> Boxes:
        """Clip to the image ``[0, width] × [0, height]``."""
        b = self.xyxy.copy()
        b[:, 0::2] = np.clip(b[:, 0::2], 0, width)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, height)
        return Boxes(b, **self._meta_kwargs())

    def scale(self, sx: float, sy: float | None = None) -> Boxes:
        """Multiply x coordinates by ``sx`` and y by ``sy`` (default ``sx``)."""
        sy = sx if sy is None else sy
        return Boxes(self.xyxy * np.array([sx, sy, sx, sy]), **self._meta_kwargs())

    def nms(self, iou_threshold: float = 0.5, *, class_aware: bool = True) -> Boxes:
        """Greedy non-maximum suppression by score (torchvision's kernel); kept boxes by score."""
        import torch
        from torchvision.ops import batched_nms, nms

        if len(self) == 0:
            return self
        scores = self.scores if self.scores is not None else np.ones(len(self))
        b = torch.from_numpy(self.xyxy)
        s = torch.from_numpy(np.asarray(scores, dtype=np.float64))
        if class_aware and self.labels is not None:
            keep = batched_nms(b, s, torch.from_numpy(self.labels), iou_threshold)
        else:
            keep = nms(b, s, iou_threshold)
        return self[keep.numpy()]


def _inter_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter, area_a[:, None] + area_b[None, :] - inter
