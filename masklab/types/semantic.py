"""``SemanticMap`` (a class id per pixel) and ``Alpha`` (a matte)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from masklab.types.masks import Masks


def default_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), ``(n, 3)`` uint8; id 0 is black.

    Stable and distinct for neighbouring ids; the same map DAVIS and VOC label PNGs use.
    """
    ids = np.arange(n)
    pal = np.zeros((n, 3), np.int64)
    c = ids.copy()
    for shift in range(7, -1, -1):
        for ch in range(3):
            pal[:, ch] |= ((c >> ch) & 1) << shift
        c = c >> 3
    return pal.astype(np.uint8)


@dataclass
class SemanticMap:
    """An ``(H, W)`` map of class ids; ``ignore_index`` marks unlabelled pixels."""

    labels: np.ndarray
    class_names: list[str] | None = None
    ignore_index: int | None = 255
    palette: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        lab = np.asarray(self.labels)
        if lab.ndim != 2:
            raise ValueError(f"semantic labels must be (H, W), got shape {lab.shape}")
        if not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(f"semantic labels must be integers, got {lab.dtype}")
        self.labels = lab
        if self.palette is not None:
            self.palette = np.asarray(self.palette, np.uint8).reshape(-1, 3)

    @property
    def size(self) -> tuple[int, int]:
        return self.labels.shape  # type: ignore[return-value]

    def valid(self) -> np.ndarray:
        """Bool map of labelled pixels."""
        if self.ignore_index is None:
            return np.ones(self.labels.shape, bool)
        return self.labels != self.ignore_index

    def class_areas(self) -> dict[int, int]:
        """Pixel count of each class present (ignored pixels excluded)."""
        ids, counts = np.unique(self.labels[self.valid()], return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}

    def colors(self) -> np.ndarray:
        """The palette to draw with: the map's own, else the VOC map (ignore drawn white)."""
        top = int(self.labels.max(initial=0)) + 1
        pal = self.palette if self.palette is not None else default_palette(max(256, top))
        if len(pal) < top:
            pal = np.concatenate([pal, default_palette(top)[len(pal):]])
        pal = pal.copy()
        if self.ignore_index is not None and 0 <= self.ignore_index < len(pal) \
                and self.palette is None:
            pal[self.ignore_index] = 255
        return pal

    def to_rgb(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 colour rendering."""
        return self.colors()[np.clip(self.labels, 0, None)]

    def to_masks(self) -> Masks:
        """One mask per class present, ``labels`` set to the class ids."""
        ids = np.array(sorted(self.class_areas()), dtype=np.int64)
        return Masks(self.labels[None] == ids[:, None, None], labels=ids,
                     class_names=self.class_names)

    @classmethod
    def from_masks(cls, masks: Masks, *, background: int = 0, **kwargs) -> SemanticMap:
        """Paint masks by label (larger masks first, so small objects stay on top)."""
        if masks.labels is None:
            raise ValueError("masks need labels to become a semantic map")
        top = max(int(masks.labels.max(initial=0)), background)
        dtype = np.uint8 if top < 256 else np.int32
        out = np.full(masks.size, background, dtype=dtype)
        dense = masks.to_dense()
        for i in np.argsort(-masks.area, kind="stable"):
            out[dense[i]] = masks.labels[i]
        kwargs.setdefault("class_names", masks.class_names)
        return cls(out, **kwargs)


@dataclass
class Alpha:
    """An ``(H, W)`` float32 matte in ``[0, 1]`` (1 is foreground)."""

    alpha: np.ndarray

    def __post_init__(self) -> None:
        a = np.asarray(self.alpha)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        if a.ndim != 2:
            raise ValueError(f"alpha must be (H, W), got shape {a.shape}")
        if np.issubdtype(a.dtype, np.integer):
            raise ValueError("integer alpha is ambiguous: use Alpha.from_uint8 / from_uint16")
        a = a.astype(np.float32, copy=False)
        if not np.isfinite(a).all() or a.min(initial=0) < 0 or a.max(initial=0) > 1:
            raise ValueError("alpha values must be finite and within [0, 1]")
        self.alpha = a

    @classmethod
    def from_uint8(cls, a: np.ndarray) -> Alpha:
        return cls(np.asarray(a, np.float32) / 255.0)

    @classmethod
    def from_uint16(cls, a: np.ndarray) -> Alpha:
        return cls(np.asarray(a, np.float32) / 65535.0)

    def to_uint8(self) -> np.ndarray:
        return np.round(self.alpha * 255).astype(np.uint8)

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape  # type: ignore[return-value]
