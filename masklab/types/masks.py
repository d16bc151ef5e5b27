"""``Masks``: N binary masks of one image size, held dense (N×H×W bool) or as COCO RLE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from masklab import rle as _rle
from masklab.types._meta import InstanceMeta, as_index, cat_meta
from masklab.types.boxes import Boxes


class Masks(InstanceMeta):
    """N binary masks of size ``H×W`` with optional ``scores``, ``labels``, ``track_ids``.

    Construct from a dense ``(N, H, W)`` array (any dtype, any memory order; nonzero is
    foreground), or with ``from_rle`` / ``from_polygons`` / ``from_label_map``. The dense array
    and the RLE are each computed once, on first use, and cached.

    Example::

        >>> m = Masks(np.eye(4, dtype=bool)[None], scores=[0.9])
        >>> m.area.tolist(), m.to_rle()[0]["counts"]
        ([4], '01400000')
    """

    def __init__(self, data, *, scores=None, labels=None, track_ids=None, class_names=None):
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"masks must have shape (N, H, W), got {arr.shape}")
        self._dense: np.ndarray | None = arr if arr.dtype == bool else arr != 0
        self._rles: list[dict] | None = None
        self._size = (int(arr.shape[1]), int(arr.shape[2]))
        self._n = int(arr.shape[0])
        self._set_meta(self._n, scores, labels, track_ids, class_names)

    @classmethod
    def _from_rles(cls, rles: list[dict], size: tuple[int, int], **meta) -> Masks:
        self = cls.__new__(cls)
        self._dense, self._rles, self._size, self._n = None, rles, size, len(rles)
        self._set_meta(self._n, meta.get("scores"), meta.get("labels"),
                       meta.get("track_ids"), meta.get("class_names"))
        return self

    # --- constructors ------------------------------------------------------------------
    @classmethod
    def from_dense(cls, data, **meta) -> Masks:
        """From an ``(N, H, W)`` (or ``(H, W)``) array; nonzero is foreground."""
        return cls(data, **meta)

    @classmethod
    def from_rle(cls, rles: Sequence[dict], *, size: tuple[int, int] | None = None,
                 **meta) -> Masks:
        """From COCO RLE dicts (compressed ``str``/``bytes`` or uncompressed list counts).

        ``size`` (``(h, w)``) is required only when ``rles`` is empty.
        """
        if len(rles) == 0:
            if size is None:
                raise ValueError("from_rle of zero masks needs size=(h, w)")
            return cls(np.zeros((0, *size), bool), **meta)
        h, w = (int(v) for v in rles[0]["size"])
        if size is not None and tuple(size) != (h, w):
            raise ValueError(f"RLE size {(h, w)} differs from size={tuple(size)}")
        out = []
        for i, r in enumerate(rles):
            if [int(v) for v in r["size"]] != [h, w]:
                raise ValueError(f"RLE {i} has size {r['size']}, expected {[h, w]}")
            counts = r["counts"]
            if isinstance(counts, bytes):
                counts = counts.decode("ascii")
            elif not isinstance(counts, str):
                cnts = np.asarray(counts, dtype=np.int64)
                if (cnts < 0).any() or int(cnts.sum()) != h * w:
                    raise ValueError(f"uncompressed RLE {i} does not sum to h*w = {h * w}")
                counts = _rle.counts_to_string(cnts)
            out.append({"size": [h, w], "counts": counts})
        return cls._from_rles(out, (h, w), **meta)

    @classmethod
    def from_polygons(cls, polygons: Sequence, height: int, width: int, **meta) -> Masks:
        """Rasterise polygons exactly as COCO does (pycocotools ``frPyObjects`` + ``merge``).

        ``polygons[i]`` is one instance: a list of polygons, each a flat ``[x0, y0, x1, y1, ...]``
        list or a ``(K, 2)`` array, in pixel coordinates. Several polygons are unioned.
        """
        from pycocotools import mask as coco_mask

        rles = []
        for i, inst in enumerate(polygons):
            parts = [inst] if _is_single_polygon(inst) else list(inst)
            flat = []
            for j, poly in enumerate(parts):
                p = np.asarray(poly, dtype=np.float64).reshape(-1)
                if p.size < 6 or p.size % 2 or not np.isfinite(p).all():
                    raise ValueError(f"polygon {j} of instance {i} needs >= 3 finite (x, y) "
                                     f"points, got {p.size} numbers")
                flat.append(p.tolist())
            if not flat:
                raise ValueError(f"instance {i} has no polygon")
            merged = coco_mask.merge(coco_mask.frPyObjects(flat, int(height), int(width)))
            rles.append({"size": [int(height), int(width)],
                         "counts": merged["counts"].decode("ascii")})
        if not rles:
            return cls(np.zeros((0, int(height), int(width)), bool), **meta)
        return cls._from_rles(rles, (int(height), int(width)), **meta)

    @classmethod
    def from_label_map(cls, label_map: np.ndarray, *, background: int = 0, **meta) -> Masks:
        """One mask per distinct nonbackground value of an ``(H, W)`` id map, in id order.

        The ids are returned as ``track_ids`` unless given.
        """
        lm = np.asarray(label_map)
        if lm.ndim != 2:
            raise ValueError(f"label map must be 2-D, got shape {lm.shape}")
        ids = np.unique(lm)
        ids = ids[ids != background]
        meta.setdefault("track_ids", ids)
        return cls(lm[None] == ids[:, None, None], **meta)

    # --- basic properties --------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self._size

    @property
    def height(self) -> int:
        return self._size[0]

    @property
    def width(self) -> int:
        return self._size[1]

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Masks(n={self._n}, size={self._size})"

    def to_dense(self) -> np.ndarray:
        """``(N, H, W)`` bool array (cached; do not modify in place)."""
        if self._dense is None:
            if self._n == 0:
                self._dense = np.zeros((0, *self._size), bool)
            else:
                self._dense = _rle.decode(self._rles)
        return self._dense

    def to_rle(self, *, compressed: bool = True) -> list[dict]:
        """COCO RLE dicts; compressed ``counts`` are ``str`` byte-identical to pycocotools'."""
        if not compressed:
            if self._dense is None:
                return [{"size": list(self._size), "counts": _rle.rle_counts(r).tolist()}
                        for r in self._rles]
            return _rle.encode(self._dense, compressed=False)
        if self._rles is None:
            self._rles = _rle.encode(self._dense) if self._n else []
        return [dict(r, size=list(r["size"])) for r in self._rles]

    @property
    def area(self) -> np.ndarray:
        """Foreground pixel count of each mask, int64 ``(N,)``."""
        if self._dense is None:
            return _rle.area(self._rles)
        return self._dense.reshape(self._n, self.height * self.width).sum(axis=1, dtype=np.int64)

    @property
    def boxes(self) -> Boxes:
        """Tight ``xyxy`` boxes (exclusive max, as COCO); empty masks give ``(0, 0, 0, 0)``."""
        if self._dense is None:
            from pycocotools import mask as coco_mask

            xywh = coco_mask.toBbox(_rle.to_pycocotools(self._rles))
            return Boxes.from_xywh(np.asarray(xywh, np.float64).reshape(-1, 4),
                                   **self._meta_kwargs())
        d = self._dense
        cols, rows = d.any(axis=1), d.any(axis=2)
        nonempty = cols.any(axis=1)
        x0 = cols.argmax(axis=1)
        x1 = self.width - cols[:, ::-1].argmax(axis=1)
        y0 = rows.argmax(axis=1)
        y1 = self.height - rows[:, ::-1].argmax(axis=1)
        xyxy = np.stack([x0, y0, x1, y1], axis=1).astype(np.float64)
        xyxy[~nonempty] = 0
        return Boxes(xyxy, **self._meta_kwargs())

    # --- container protocol ------------------------------------------------------------
    def __getitem__(self, idx) -> Masks:
        index = as_index(idx, self._n)
        meta = self._meta_kwargs(index)
        if self._dense is not None:
            out = Masks(self._dense[index], **meta)
            if self._rles is not None:
                out._rles = [self._rles[i] for i in index]
            return out
        return Masks._from_rles([self._rles[i] for i in index], self._size, **meta)

    @staticmethod
    def cat(parts: Sequence[Masks]) -> Masks:
        """Concatenate mask sets of the same size."""
        if not parts:
            raise ValueError("Masks.cat needs at least one Masks")
        size = parts[0].size
        for p in parts:
            if p.size != size:
                raise ValueError(f"cannot concatenate masks of sizes {size} and {p.size}")
        meta = cat_meta(parts)
        if all(p._dense is None for p in parts):
            return Masks._from_rles([r for p in parts for r in p._rles], size, **meta)
        return Masks(np.concatenate([p.to_dense() for p in parts]), **meta)

    # --- comparisons -------------------------------------------------------------------
    def iou(self, other: Masks, *, crowd: np.ndarray | None = None) -> np.ndarray:
        """Pairwise IoU, shape ``(len(self), len(other))``.

        Where ``crowd[j]`` is true, the union is this side's area alone (COCO's rule for crowd
        ground truth: ``self`` is detections, ``other`` ground truth).
        """
        if self.size != other.size:
            raise ValueError(f"mask sizes differ: {self.size} vs {other.size}")
        n, m = len(self), len(other)
        if n == 0 or m == 0:
            return np.zeros((n, m))
        hw = self.height * self.width
        # float32 sums of 0/1 are exact below 2**24 pixels
        dtype = np.float32 if hw < 2**24 else np.float64
        a = self.to_dense().reshape(n, hw).astype(dtype)
        b = other.to_dense().reshape(m, hw).astype(dtype)
        inter = (a @ b.T).astype(np.float64)
        area_a = self.area.astype(np.float64)
        area_b = other.area.astype(np.float64)
        union = area_a[:, None] + area_b[None, :] - inter
        if crowd is not None:
            crowd = np.asarray(crowd, bool)
            union[:, crowd] = area_a[:, None]
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def nms(self, iou_threshold: float = 0.5) -> Masks:
        """Greedy mask NMS by score: drop a mask overlapping a kept one with IoU > threshold."""
        if self._n == 0:
            return self
        scores = self.scores if self.scores is not None else np.ones(self._n)
        order = np.argsort(-scores, kind="stable")
        iou = self[order].iou(self[order])
        keep = np.ones(self._n, bool)
        for i in range(self._n):
            if keep[i]:
                later = np.arange(self._n) > i
                keep &= ~(later & (iou[i] > iou_threshold))
        return self[order[keep]]

    # --- geometry ----------------------------------------------------------------------
    def resize(self, height: int, width: int, *, mode: str = "bilinear") -> Masks:
        """Resize to ``height × width``: ``bilinear`` (threshold at 0.5) or ``nearest``."""
        import cv2

        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
        interp = cv2.INTER_LINEAR if mode == "bilinear" else cv2.INTER_NEAREST
        out = np.zeros((self._n, height, width), bool)
        for i, m in enumerate(self.to_dense()):
            if mode == "bilinear":
                out[i] = cv2.resize(m.astype(np.float32), (width, height),
                                    interpolation=interp) >= 0.5
            else:
                out[i] = cv2.resize(m.view(np.uint8), (width, height),
                                    interpolation=interp).astype(bool)
        return Masks(out, **self._meta_kwargs())

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> Masks:
        """The window ``[y0:y1, x0:x1]`` (clipped to the image)."""
        x0, x1 = max(0, int(x0)), min(self.width, int(x1))
        y0, y1 = max(0, int(y0)), min(self.height, int(y1))
        if x1 < x0 or y1 < y0:
            raise ValueError("crop window is empty or inverted")
        return Masks(self.to_dense()[:, y0:y1, x0:x1], **self._meta_kwargs())

    def pad(self, top: int = 0, bottom: int = 0, left: int = 0, right: int = 0) -> Masks:
        """Pad with background."""
        d = np.pad(self.to_dense(), ((0, 0), (top, bottom), (left, right)))
        return Masks(d, **self._meta_kwargs())

    # --- other representations ---------------------------------------------------------
    def to_polygons(self, *, min_points: int = 3) -> list[list[list[float]]]:
        """Outer contours of each mask as COCO polygons (flat ``[x0, y0, ...]`` lists).

        OpenCV traces boundary pixel centres; each vertex is pushed half a pixel outwards (a
        miter offset) so the polygon follows the pixels' outer edges, and ``from_polygons`` of
        the result gives the mask back (exactly for solid shapes). Holes are not represented
        (COCO polygons cannot hold them).
        """
        import cv2

        out = []
        for m in self.to_dense():
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            polys = []
            for c in contours:
                pts = c.reshape(-1, 2).astype(np.float64)
                if len(pts) >= min_points:
                    polys.append((_offset_outwards(pts, 0.5) + 0.5).reshape(-1).tolist())
                elif len(pts) > 0:  # a 1-2 pixel sliver: use the pixel square(s) it covers
                    x0, y0 = pts.min(axis=0)
                    x1, y1 = pts.max(axis=0) + 1
                    polys.append([x0, y0, x1, y0, x1, y1, x0, y1])
            out.append(polys)
        return out

    def to_label_map(self, dtype=np.int32) -> np.ndarray:
        """``(H, W)`` map with 0 for background and ``i + 1`` for mask ``i`` (later on top)."""
        lm = np.zeros(self._size, dtype=dtype)
        for i, m in enumerate(self.to_dense()):
            lm[m] = i + 1
        return lm


def _is_single_polygon(inst) -> bool:
    arr = np.asarray(inst, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 2:
        return True
    return len(inst) > 0 and np.isscalar(inst[0])


def _offset_outwards(pts: np.ndarray, d: float) -> np.ndarray:
    """Move the vertices of a closed polygon ``d`` outwards along their miter bisectors."""
    nxt = np.concatenate([pts[1:], pts[:1]])
    x, y = pts[:, 0], pts[:, 1]
    orient = 1.0 if np.sum(x * nxt[:, 1] - nxt[:, 0] * y) > 0 else -1.0
    e = nxt - pts  # edge i: vertex i -> i + 1; its outward unit normal
    length = np.hypot(e[:, 0], e[:, 1])
    length[length == 0] = 1
    n_next = np.empty_like(e)
    n_next[:, 0] = e[:, 1] * orient / length
    n_next[:, 1] = -e[:, 0] * orient / length
    n_prev = np.concatenate([n_next[-1:], n_next[:-1]])  # edge i - 1 -> i
    b = n_prev + n_next
    bl = np.hypot(b[:, 0], b[:, 1])
    bl[bl == 0] = 1
    b /= bl[:, None]
    cos = np.clip((b * n_next).sum(axis=1, keepdims=True), 0.5, 1.0)
    return pts + b * d / cos
