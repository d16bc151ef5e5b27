"""Prompts for promptable segmentation: points, a box, a mask, scribbles and text."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Scribble:
    """A polyline drawn by a user: ``(M, 2)`` float ``(x, y)`` points, a brush width in pixels,
    and whether it marks the object (``positive``) or the background."""

    points: np.ndarray
    width: float = 5.0
    positive: bool = True
    raster: np.ndarray | None = None  # (H, W) bool: a painted stroke instead of a polyline

    def __post_init__(self) -> None:
        if self.raster is not None:
            self.raster = np.asarray(self.raster).astype(bool)
            if self.raster.ndim != 2 or not self.raster.any():
                raise ValueError("a raster scribble must be a non-empty (H, W) map")
            ys, xs = np.nonzero(self.raster)
            self.points = np.stack([xs, ys], 1).astype(np.float64)
        pts = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        if len(pts) == 0:
            raise ValueError("a scribble needs at least one point")
        if self.width <= 0:
            raise ValueError("scribble width must be positive")
        self.points = pts

    @classmethod
    def from_raster(cls, painted: np.ndarray, positive: bool = True) -> Scribble:
        """A scribble painted as pixels (a PNG stroke), not drawn as a polyline."""
        return cls(np.zeros((0, 2)), 1.0, positive, raster=painted)

    def sample_points(self, n: int = 5) -> np.ndarray:
        """Up to ``n`` points spread along the stroke (for point-prompt models)."""
        idx = np.linspace(0, len(self.points) - 1, min(n, len(self.points))).round()
        return self.points[idx.astype(int)]

    def rasterize(self, height: int, width: int) -> np.ndarray:
        """``(H, W)`` bool map of the pixels the brush covers."""
        import cv2

        if self.raster is not None:
            if self.raster.shape == (height, width):
                return self.raster
            return cv2.resize(self.raster.astype(np.uint8), (width, height),
                              interpolation=cv2.INTER_NEAREST) > 0

        canvas = np.zeros((height, width), np.uint8)
        thickness = max(1, round(self.width))
        pts = np.round(self.points).astype(np.int32)
        if len(pts) == 1:
            cv2.circle(canvas, (int(pts[0, 0]), int(pts[0, 1])), max(1, thickness // 2), 1, -1)
        else:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], False, 1, thickness)
        return canvas.astype(bool)


@dataclass
class Prompts:
    """Everything a user can give a promptable backend for one object.

    ``points``: ``(P, 2)`` float ``(x, y)``; ``point_labels``: ``(P,)`` int, 1 positive and 0
    negative; ``box``: ``(4,)`` xyxy; ``mask``: ``(H, W)`` bool mask or float logits;
    ``scribbles``: list of ``Scribble``; ``text``: a phrase for text grounding.
    """

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box: np.ndarray | None = None
    mask: np.ndarray | None = None
    scribbles: list[Scribble] = field(default_factory=list)
    text: str | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        labels = np.asarray(self.point_labels, dtype=np.int64).reshape(-1)
        if labels.size == 0 and len(self.points):
            labels = np.ones(len(self.points), np.int64)
        if len(labels) != len(self.points):
            raise ValueError(f"{len(labels)} point labels for {len(self.points)} points")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("point labels must be 1 (positive) or 0 (negative)")
        self.point_labels = labels
        if self.box is not None:
            box = np.asarray(self.box, dtype=np.float64).reshape(-1)
            if box.shape != (4,) or box[2] < box[0] or box[3] < box[1]:
                raise ValueError(f"box must be x0,y0,x1,y1 with x0<=x1, y0<=y1, got {box}")
            self.box = box
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 2:
                raise ValueError(f"mask prompt must be (H, W), got shape {m.shape}")
            self.mask = m

    def is_empty(self) -> bool:
        return (len(self.points) == 0 and self.box is None and self.mask is None
                and not self.scribbles and not self.text)

    def is_mask_only(self) -> bool:
        """A mask and nothing else (no points, box or scribbles): the object as given."""
        return (self.mask is not None and not len(self.points) and self.box is None
                and not self.scribbles)

    def fit_to(self, height: int, width: int) -> tuple[Prompts, list[str]]:
        """These prompts checked against an ``height × width`` image: a point, a box or a
        scribble that lies wholly outside it is a ``ValueError``; a box partly outside is
        clipped to the image. Returns the prompts and one note per change made."""
        notes: list[str] = []
        size = f"{width}x{height}"
        for x, y in self.points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"point {x:g},{y:g} lies outside the {size} image")
        for s in self.scribbles:
            inside = ((s.points[:, 0] >= 0) & (s.points[:, 0] <= width)
                      & (s.points[:, 1] >= 0) & (s.points[:, 1] <= height))
            if s.raster is None and not inside.any():
                raise ValueError(f"a scribble lies wholly outside the {size} image")
        box = self.box
        if box is not None:
            x0, y0, x1, y1 = box
            text = ",".join(f"{v:g}" for v in box)
            if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
                raise ValueError(f"box {text} lies wholly outside the {size} image")
            clipped = np.array([max(x0, 0.0), max(y0, 0.0), min(x1, width), min(y1, height)])
            if (clipped != box).any():
                notes.append(f"box {text} reaches outside the {size} image; clipped to "
                             + ",".join(f"{v:g}" for v in clipped))
                box = clipped
        if box is self.box:
            return self, notes
        return Prompts(self.points, self.point_labels, box, self.mask, list(self.scribbles),
                       self.text), notes

    def add_point(self, x: float, y: float, positive: bool = True) -> Prompts:
        """A new ``Prompts`` with one more click."""
        return Prompts(np.vstack([self.points, [[x, y]]]),
                       np.append(self.point_labels, int(positive)), self.box, self.mask,
                       list(self.scribbles), self.text)

    def scribble_maps(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(positive, negative)`` bool seed maps from the scribbles."""
        pos = np.zeros((height, width), bool)
        neg = np.zeros((height, width), bool)
        for s in self.scribbles:
            (pos if s.positive else neg)[s.rasterize(height, width)] = True
        return pos, neg


def parse_point(text: str) -> tuple[float, float, int]:
    """Parse ``"X,Y"`` or ``"X,Y,LABEL"`` (label 1 positive, 0 negative)."""
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise ValueError(f"point {text!r} must be X,Y or X,Y,LABEL")
    try:
        x, y = float(parts[0]), float(parts[1])
        label = int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise ValueError(f"point {text!r} must be numbers X,Y[,LABEL]") from None
    if label not in (0, 1):
        raise ValueError(f"point {text!r}: label must be 1 (positive) or 0 (negative)")
    return x, y, label


def parse_box(text: str) -> np.ndarray:
    """Parse ``"X0,Y0,X1,Y1"``."""
    try:
        box = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"box {text!r} must be numbers X0,Y0,X1,Y1") from None
    if box.shape != (4,) or box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"box {text!r} must be X0,Y0,X1,Y1 with X0<=X1 and Y0<=Y1")
    return box
