"""From prompts to what classical methods understand: seed maps, and extreme points to prompts.

A click is a disk of ``click_radius`` pixels around the point (positive: object seeds,
negative: background seeds); a scribble is its rasterised brush stroke; a box makes every
pixel outside it background; a mask prompt is a soft prior (probably object).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from masklab.types import Prompts


@dataclass
class Seeds:
    fg: np.ndarray  # (H, W) bool: certainly object
    bg: np.ndarray  # (H, W) bool: certainly background
    prior: np.ndarray | None = None  # (H, W) bool: probably object (box inside, mask prompt)

    @property
    def empty(self) -> bool:
        return not self.fg.any() and (self.prior is None or not self.prior.any())


def disk(shape: tuple[int, int], x: float, y: float, radius: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.ogrid[:h, :w]
    return (xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2


def prompts_to_seeds(prompts: Prompts, shape: tuple[int, int], *, click_radius: float = 5.0,
                     border_background: bool = False) -> Seeds:
    """Seed maps of ``prompts`` for an image of ``shape``. ``border_background`` also marks
    the one-pixel image border as background when nothing else gives background seeds
    (methods such as the random walker need some)."""
    h, w = shape
    fg = np.zeros(shape, bool)
    bg = np.zeros(shape, bool)
    prior = None
    for (x, y), lab in zip(prompts.points, prompts.point_labels, strict=True):
        (fg if lab == 1 else bg)[disk(shape, x, y, click_radius)] = True
    for s in prompts.scribbles:
        (fg if s.positive else bg)[s.rasterize(h, w)] = True
    if prompts.box is not None:
        x0, y0, x1, y1 = prompts.box
        inside = np.zeros(shape, bool)
        inside[max(0, int(np.floor(y0))):int(np.ceil(y1)) + 1,
               max(0, int(np.floor(x0))):int(np.ceil(x1)) + 1] = True
        bg |= ~inside
        prior = inside
    if prompts.mask is not None:
        m = np.asarray(prompts.mask)
        m = m > 0 if m.dtype != bool else m
        if m.shape != shape:
            raise ValueError(f"mask prompt is {m.shape}, image is {shape}")
        prior = m if prior is None else prior & m
    if border_background and not bg.any():
        bg[0, :] = bg[-1, :] = bg[:, 0] = bg[:, -1] = True
    bg &= ~fg  # a user's object seed wins over a box edge
    return Seeds(fg, bg, prior)


def extreme_points_to_prompts(points, *, margin: float = 0.0) -> Prompts:
    """DEXTR-style prompts from four extreme points (left-, top-, right-, bottom-most, any
    order): their bounding box (grown by ``margin`` pixels) plus the points as positive
    clicks — they lie on the object's boundary, inside it."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if len(pts) != 4:
        raise ValueError(f"extreme points: expected 4 (x, y) points, got {len(pts)}")
    x0, y0 = pts.min(axis=0) - margin
    x1, y1 = pts.max(axis=0) + margin
    return Prompts(points=pts, point_labels=np.ones(4, np.int64),
                   box=np.array([max(0.0, x0), max(0.0, y0), x1, y1]))
