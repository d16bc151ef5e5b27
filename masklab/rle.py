"""COCO run-length encoding, vectorised with numpy.

A COCO RLE stores a binary mask of size ``h×w`` as run lengths over its pixels in column-major
(Fortran) order, starting with a run of zeros. The compressed ``counts`` string is the
LEB128-like code of pycocotools' ``rleToString``: each count (after the first three, minus the
count two places before it) is written as 5-bit groups with a continuation bit, offset by 48.
Our strings are byte-identical to pycocotools' and decode theirs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

_CHUNKS = 8  # 8 × 5 bits covers any signed count up to 2**39


def dense_to_counts(masks: np.ndarray) -> list[np.ndarray]:
    """Uncompressed run lengths of each mask in an ``(N, H, W)`` array (any dtype, any order)."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected an (N, H, W) array, got shape {masks.shape}")
    n, h, w = masks.shape
    hw = h * w
    # column-major flattening of each mask: transpose to (N, W, H), then C-order rows
    flat = np.ascontiguousarray(masks.transpose(0, 2, 1) != 0).reshape(n, hw)
    if hw == 0:
        return [np.zeros(1, np.int64) for _ in range(n)]
    rows, cols = np.nonzero(flat[:, 1:] != flat[:, :-1])
    cols += 1
    bounds = np.searchsorted(rows, np.arange(n + 1))
    first = flat[:, 0]
    out = []
    for i in range(n):
        edges = np.concatenate(([0], cols[bounds[i]:bounds[i + 1]], [hw]))
        runs = np.diff(edges)
        if first[i]:  # COCO RLE always starts with a (here empty) run of zeros
            runs = np.concatenate(([0], runs))
        out.append(runs)
    return out


def counts_to_string(counts: np.ndarray) -> str:
    """Compress uncompressed run lengths to the COCO ``counts`` string."""
    cnts = np.asarray(counts, dtype=np.int64)
    if cnts.size == 0:
        return ""
    x = cnts.copy()
    x[3:] -= cnts[1:-2]
    shifts = 5 * np.arange(_CHUNKS, dtype=np.int64)
    chunk = (x[:, None] >> shifts) & 0x1F
    rest = x[:, None] >> (shifts + 5)
    more = np.where(chunk & 0x10, rest != -1, rest != 0)
    n_chunks = np.argmin(more, axis=1) + 1
    valid = np.arange(_CHUNKS) < n_chunks[:, None]
    chars = (chunk | (more.astype(np.int64) << 5)) + 48
    return chars[valid].astype(np.uint8).tobytes().decode("ascii")


def string_to_counts(s: str | bytes) -> np.ndarray:
    """Decode a COCO ``counts`` string to uncompressed run lengths (int64)."""
    raw = s.encode("ascii") if isinstance(s, str) else bytes(s)
    if not raw:
        return np.zeros(0, np.int64)
    b = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if b.min() < 0 or b.max() > 63:
        raise ValueError("invalid character in RLE counts string")
    ends = (b & 0x20) == 0
    if not ends[-1]:
        raise ValueError("truncated RLE counts string")
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    group = np.cumsum(np.concatenate(([0], ends[:-1].astype(np.int64))))
    k = np.arange(b.size) - starts[group]
    if k.max() >= _CHUNKS:
        raise ValueError("RLE count too large")
    x = np.add.reduceat((b & 0x1F) << (5 * k), starts)
    last = b[ends]
    nk = k[ends] + 1
    neg = (last & 0x10) != 0
    x[neg] -= np.left_shift(1, 5 * nk[neg])
    cnts = x
    cnts[1::2] = np.cumsum(x[1::2])
    if cnts.size > 2:
        cnts[2::2] = np.cumsum(x[2::2])
    return cnts


def check_strings(strings: Sequence[str], areas: Sequence[int] | np.ndarray
                  ) -> tuple[int, str] | None:
    """Validate many COCO ``counts`` strings at once: the index and fault of the first string
    that does not decode (bad character, truncated, a count too large), has a negative run, or
    whose runs do not sum to its ``areas`` entry (h·w); None when all are sound.

    The decoding of ``string_to_counts``, vectorised over every string together (a few passes
    over all their characters and counts, no Python loop per string).
    """
    n = len(strings)
    lens = np.fromiter(map(len, strings), np.int64, n)
    areas = np.asarray(areas, np.int64)
    # batches of about 256k characters: the arrays stay in cache (and the allocator reuses
    # them), which is several times faster than one pass over millions of characters
    cut = np.searchsorted(np.cumsum(lens), np.arange(1, 1 + lens.sum() // _BATCH) * _BATCH)
    bounds = np.unique(np.concatenate(([0], cut + 1, [n])).clip(0, n))
    for lo, hi in itertools.pairwise(bounds):
        fault = _check_batch(strings[lo:hi], lens[lo:hi], areas[lo:hi])
        if fault is not None:
            return int(lo) + fault[0], fault[1]
    return None


_BATCH = 1 << 18


def _check_batch(strings: Sequence[str], lens: np.ndarray, areas: np.ndarray
                 ) -> tuple[int, str] | None:
    n = len(strings)
    ends_at = np.cumsum(lens)
    starts = ends_at - lens
    try:
        raw = np.frombuffer("".join(strings).encode("ascii"), np.uint8)
    except UnicodeEncodeError as e:
        return int(np.searchsorted(ends_at, e.start, side="right")), \
            "invalid character in RLE counts string"
    faults: dict[int, str] = {}

    def fault(chars: np.ndarray, why: str) -> None:
        if chars.size:
            faults.setdefault(int(np.searchsorted(ends_at, chars.min(), side="right")), why)

    fault(np.flatnonzero((raw < 48) | (raw > 111)), "invalid character in RLE counts string")
    b = raw - np.uint8(48)  # wraps for bad characters, which are reported above
    ends = b < 32  # no continuation bit: the last character of a count
    full = lens > 0
    last = ends_at[full] - 1
    fault(last[~ends[last]], "truncated RLE counts string")
    ends[last] = True  # a truncated string's last count ends with it (it is reported)
    E = np.flatnonzero(ends)  # the last character of every count
    L = np.diff(E, prepend=-1)  # characters per count
    fault(E[L > _CHUNKS], "RLE count too large")
    head = E - L + 1
    x = (b[head] & 0x1F).astype(np.int64)
    for j in range(1, min(int(L.max(initial=1)), _CHUNKS)):
        more = np.flatnonzero(L > j)
        x[more] |= (b[head[more] + j] & 0x1F).astype(np.int64) << (5 * j)
    neg = (b[E] & 0x10) != 0
    x[neg] -= np.left_shift(1, 5 * np.minimum(L[neg], _CHUNKS))
    first = np.searchsorted(E, starts)  # each string's first count
    per = np.searchsorted(E, ends_at) - first  # counts per string
    owner = np.repeat(np.arange(n), per)
    pos = np.arange(E.size) - first[owner]  # index of each count within its string
    odd = (pos & 1) == 1
    c = x
    for chain in (odd, ~odd & (pos >= 2)):  # counts after the third add the one 2 before
        run = np.cumsum(np.where(chain, x, 0))
        before = np.where(first > 0, run[np.maximum(first - 1, 0)], 0)  # earlier strings'
        c = np.where(chain, run - before[owner], c)
    fault(E[c < 0], "negative run in RLE counts")
    totals = np.zeros(n, np.int64)
    totals[per > 0] = np.add.reduceat(c, first[per > 0]) if c.size else 0
    bad = np.flatnonzero(totals != areas)
    if bad.size and int(bad[0]) not in faults:
        i = int(bad[0])
        faults[i] = f"RLE counts sum to {int(totals[i])}, expected h*w = {int(areas[i])}"
    if not faults:
        return None
    i = min(faults)
    return i, faults[i]


def counts_to_dense(counts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Decode uncompressed run lengths to an ``(H, W)`` bool mask."""
    cnts = np.asarray(counts, dtype=np.int64)
    if (cnts < 0).any() or int(cnts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(cnts.sum())}, expected h*w = {h * w}")
    values = np.zeros(cnts.size, bool)
    values[1::2] = True
    return np.repeat(values, cnts).reshape(w, h).T


def to_pycocotools(rles: Sequence[dict]) -> list[dict]:
    """The same RLEs with ``bytes`` counts, as pycocotools' C functions want them
    (uncompressed ``counts`` lists are compressed first)."""
    out = []
    for r in rles:
        c = r["counts"]
        if isinstance(c, str):
            c = c.encode("ascii")
        elif not isinstance(c, bytes):
            c = counts_to_string(c).encode("ascii")
        out.append({"size": r["size"], "counts": c})
    return out


def encode(masks: np.ndarray, *, compressed: bool = True) -> list[dict]:
    """COCO RLEs (``{"size": [h, w], "counts": ...}``) of an ``(N, H, W)`` or ``(H, W)`` array.

    Compressed counts are a ``str`` (JSON-ready) byte-identical to pycocotools'; uncompressed
    counts are a list of ints.
    """
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3:
        raise ValueError(f"expected an (N, H, W) array, got shape {masks.shape}")
    n, h, w = masks.shape
    if not compressed:
        return [{"size": [h, w], "counts": c.tolist()} for c in dense_to_counts(masks)]
    if n == 0:
        return []
    if h * w == 0:
        return [{"size": [h, w], "counts": "0"} for _ in range(n)]
    # pycocotools' C encoder is the reference and ~10x faster than numpy for dense input
    from pycocotools import mask as _coco_mask

    binary = masks if masks.dtype == bool else masks != 0
    fortran = np.asfortranarray(binary.transpose(1, 2, 0)).view(np.uint8)
    return [{"size": [h, w], "counts": r["counts"].decode("ascii")}
            for r in _coco_mask.encode(fortran)]


def rle_counts(rle: dict) -> np.ndarray:
    """Uncompressed run lengths of a compressed or uncompressed COCO RLE dict."""
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return string_to_counts(counts)
    return np.asarray(counts, dtype=np.int64)


def decode(rles: Sequence[dict]) -> np.ndarray:
    """Decode COCO RLEs (compressed or not, all of one size) to an ``(N, H, W)`` bool array."""
    if len(rles) == 0:
        raise ValueError("decode needs at least one RLE to know the size")
    h, w = (int(v) for v in rles[0]["size"])
    out = np.empty((len(rles), h, w), bool)
    for i, rle in enumerate(rles):
        if [int(v) for v in rle["size"]] != [h, w]:
            raise ValueError("all RLEs must have the same size")
        out[i] = counts_to_dense(rle_counts(rle), h, w)
    return out


# pycocotools' ``area`` builds its result from ``np.array((n,), dtype=np.uint8)``, which NumPy 2
# rejects for n > 255 (OverflowError); its other batch calls are unaffected. Chunks of this
# size keep the C speed on any count.
_AREA_CHUNK = 255


def area(rles: Sequence[dict]) -> np.ndarray:
    """Foreground pixel count (int64 ``(N,)``) of COCO RLEs, compressed or not, any number."""
    from pycocotools import mask as _coco_mask

    coco = to_pycocotools(rles)
    out = np.zeros(len(coco), np.int64)
    for s in range(0, len(coco), _AREA_CHUNK):
        out[s:s + _AREA_CHUNK] = _coco_mask.area(coco[s:s + _AREA_CHUNK])
    return out
