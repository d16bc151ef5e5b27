"""Label Studio's JSON: a list of tasks (``data`` with the image's URL, ``annotations`` and
``predictions``, each a list of results).

Results read: ``brushlabels`` (Label Studio's brush RLE — the ``rle-pack`` bit format over
the RGBA pixels, the mask in the alpha channel), ``polygonlabels`` (points in percent of the
image, rasterized as COCO does), ``rectanglelabels`` and ``ellipselabels`` (percent, with
their rotation in degrees). Results of a region that share its ``id`` and hold ``choices``
(or text, a number, a rating) become that object's attributes (named after their
``from_name``); key points carry no area and are left out. From each task the first
annotation not cancelled is read (``source="predictions"``: the first prediction, with its
results' scores).

Written, each object is one ``brushlabels`` result (exact; ``shapes="polygon"``:
``polygonlabels``), as the task's annotation or, with ``as_predictions``, its prediction
(with scores), so that a Label Studio project imports the file directly; a labeling config
that matches (``<stem>.config.xml``) is written beside it.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

from masklab.errors import InputError

AREA_TYPES = ("brushlabels", "polygonlabels", "rectanglelabels", "ellipselabels")
RLE_SIZES = (3, 4, 8, 16)


# --- the brush RLE (rle-pack) ----------------------------------------------------------------
class _Bits:
    def __init__(self, data: bytes):
        self.bits = np.unpackbits(np.frombuffer(bytes(data), np.uint8))
        self.i = 0

    def read(self, n: int) -> int:
        if self.i + n > len(self.bits):
            raise ValueError("the RLE ends early")
        v = 0
        for b in self.bits[self.i:self.i + n]:
            v = (v << 1) | int(b)
        self.i += n
        return v


def brush_decode(rle, path=None, expected: int | None = None) -> np.ndarray:
    """Label Studio's brush RLE (a list of byte values) → the flat values it encodes
    (``expected``: the count it must hold, checked before anything is allocated)."""
    try:
        bits = _Bits(bytes(int(v) & 0xFF for v in rle))
        num = bits.read(32)
        if expected is not None and num != expected:
            raise ValueError(f"it holds {num} values, not {expected}")
        word = bits.read(5) + 1
        sizes = [bits.read(4) + 1 for _ in range(4)]
        out = np.zeros(num, np.uint32 if word > 16 else np.uint16 if word > 8 else np.uint8)
        i = 0
        while i < num:
            repeat = bits.read(1)
            j = i + 1 + bits.read(sizes[bits.read(2)])
            if j > num:
                raise ValueError("a run goes past the end")
            if repeat:
                out[i:j] = bits.read(word)
                i = j
            else:
                while i < j:
                    out[i] = bits.read(word)
                    i += 1
        return out
    except (ValueError, TypeError) as e:
        raise InputError(f"a brush RLE is malformed ({e})", path) from None


def brush_encode(values: np.ndarray) -> list[int]:
    """Flat uint8 values → Label Studio's brush RLE (runs of 1 as single words, longer
    runs as repeats; run-length fields of 3, 4, 8 and 16 bits, 8-bit words)."""
    v = np.asarray(values, np.uint8).reshape(-1)
    n = v.size
    parts = [f"{n:032b}", f"{8 - 1:05b}"] + [f"{s - 1:04b}" for s in RLE_SIZES]
    if n:
        change = np.flatnonzero(v[1:] != v[:-1]) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [n]]))
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            word = f"{int(v[start]):08b}"
            while length > 0:
                chunk = min(length, 1 << 16)
                if chunk == 1:
                    parts.append("0" + "00" + "000" + word)
                else:
                    k = next(k for k, s in enumerate(RLE_SIZES) if chunk <= 1 << s)
                    parts.append("1" + f"{k:02b}" + f"{chunk - 1:0{RLE_SIZES[k]}b}" + word)
                length -= chunk
    bits = "".join(parts)
    bits += "0" * (-len(bits) % 8)
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big")) if bits else []


def mask_to_brush(mask: np.ndarray) -> list[int]:
    """(H, W) bool → the brush RLE of its RGBA image (255 in every channel on the mask)."""
    rgba = np.repeat((mask.astype(np.uint8) * 255).reshape(-1), 4)
    return brush_encode(rgba)


def brush_to_mask(rle, height: int, width: int, path=None) -> np.ndarray:
    flat = brush_decode(rle, path, expected=height * width * 4)
    return flat.reshape(height, width, 4)[..., 3] >= 128


# --- reading ---------------------------------------------------------------------------------
def _region_mask(r: dict, path) -> np.ndarray:
    from masklab.types import Masks

    kind = r["type"]
    v = r.get("value") or {}
    h, w = int(r["original_height"]), int(r["original_width"])
    if kind == "brushlabels":
        if v.get("format", "rle") != "rle" or "rle" not in v:
            raise InputError("a brushlabels result needs value.rle", path)
        return brush_to_mask(v["rle"], h, w, path)
    if kind == "polygonlabels":
        pts = [c for x, y in v["points"] for c in (x * w / 100, y * h / 100)]
        if len(pts) < 6:
            return np.zeros((h, w), bool)
        return Masks.from_polygons([[pts]], h, w).to_dense()[0]
    rot = math.radians(float(v.get("rotation", 0) or 0))
    c, s = math.cos(rot), math.sin(rot)
    if kind == "rectanglelabels":  # rotated about its top-left corner
        x, y = v["x"] * w / 100, v["y"] * h / 100
        rw, rh = v["width"] * w / 100, v["height"] * h / 100
        corners = [(0, 0), (rw, 0), (rw, rh), (0, rh)]
        pts = [q for dx, dy in corners for q in (x + dx * c - dy * s, y + dx * s + dy * c)]
        return Masks.from_polygons([[pts]], h, w).to_dense()[0]
    if kind == "ellipselabels":  # centre x, y; radii in percent of width / height
        cx, cy = v["x"] * w / 100, v["y"] * h / 100
        rx, ry = v["radiusX"] * w / 100, v["radiusY"] * h / 100
        yy, xx = np.mgrid[:h, :w] + 0.5
        dx, dy = xx - cx, yy - cy
        u, t = dx * c + dy * s, -dx * s + dy * c
        return (u / max(rx, 1e-9)) ** 2 + (t / max(ry, 1e-9)) ** 2 <= 1
    raise InputError(f"unknown result type {kind!r}", path)


def _file_name(url: str) -> str:
    """The image's name from a task's URL: local files (``?d=``), uploads (Label Studio's
    8-hex prefix dropped), or the URL's last part."""
    u = urlparse(str(url))
    if "d" in parse_qs(u.query):
        return unquote(parse_qs(u.query)["d"][0])
    name = unquote(Path(u.path).name)
    if "/upload/" in u.path:
        name = re.sub(r"^[0-9a-f]{8}-", "", name)
    return name


def read_labelstudio(path: str | os.PathLike, *, class_names: list[str] | None = None,
                     source: str = "annotations", image_key: str | None = None):
    """A Label Studio JSON export (a list of tasks, or one task) as a ``MaskSet``."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.types import Masks

    path = Path(path)
    if source not in ("annotations", "predictions"):
        raise InputError("source must be annotations or predictions")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"not a Label Studio JSON file ({str(e).splitlines()[0]})",
                         path) from None
    tasks = doc if isinstance(doc, list) else [doc]
    names = list(class_names or [])
    items = []
    for k, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InputError(f"task {k}: not a Label Studio task (no 'data')", path)
        data = task["data"]
        key = image_key or next((q for q in ("image", "img") if q in data), None) or \
            next(iter(data), None)
        if key is None:
            raise InputError(f"task {k}: no image in its data", path)
        runs = [a for a in task.get(source) or [] if not a.get("was_cancelled")]
        results = runs[0].get("result", []) if runs else []
        regions: dict[str, dict] = {}
        extras: dict[str, dict] = {}
        size = None
        for r in results:
            if not isinstance(r, dict) or "type" not in r:
                raise InputError(f"task {k}: a result without a type", path)
            kind = r["type"].lower()
            rid = str(r.get("id") or uuid.uuid4().hex)
            if kind in AREA_TYPES:
                labels = (r.get("value") or {}).get(kind) or []
                if not labels:
                    continue
                regions[rid] = {**r, "type": kind, "label": labels[0]}
                size = (int(r["original_height"]), int(r["original_width"]))
            elif kind not in ("keypointlabels", "labels", "relation"):
                v = r.get("value") or {}
                val = next((v[q] for q in ("choices", "text", "number", "rating", "taxonomy")
                            if q in v), None)
                if isinstance(val, list) and len(val) == 1:
                    val = val[0]
                extras.setdefault(rid, {})[r.get("from_name", kind)] = val
        masks, labels, attrs, scores = [], [], [], []
        for rid, r in regions.items():
            m = _region_mask(r, path)
            if r["label"] not in names:
                if class_names:
                    raise InputError(f"task {k}: label {r['label']!r} is not one of the class "
                                     "names", path)
                names.append(r["label"])
            masks.append(m)
            labels.append(names.index(r["label"]) + 1)
            attrs.append(extras.get(rid, {}))
            scores.append(float(r.get("score", 1.0) if r.get("score") is not None else 1.0))
        if size is None:
            size = (int(data.get("height", 0) or 0), int(data.get("width", 0) or 0))
        if masks:
            shapes = {m.shape for m in masks}
            if len(shapes) > 1:
                raise InputError(f"task {k}: regions of different image sizes {shapes}", path)
        arr = np.stack(masks) if masks else np.zeros((0, *size), bool)
        ms = Masks(arr, labels=np.array(labels, np.int64),
                   scores=np.array(scores) if source == "predictions" else None)
        items.append(LabeledImage(_file_name(data[key]), ms, int(task.get("id", k + 1)),
                                  attributes=attrs))
    return MaskSet([{"id": i + 1, "name": n} for i, n in enumerate(names)], items)


# --- writing ---------------------------------------------------------------------------------
def _result(mask: np.ndarray, label: str, shapes: str, rid: str, from_name: str,
            to_name: str, score: float | None) -> dict | None:
    h, w = mask.shape
    base = {"id": rid, "from_name": from_name, "to_name": to_name, "original_width": w,
            "original_height": h, "image_rotation": 0}
    if score is not None:
        base["score"] = float(score)
    if shapes == "polygon":
        from masklab.types import Masks

        polys = Masks(mask[None]).to_polygons()[0]
        if polys:
            p = max(polys, key=len)
            pts = [[p[i] * 100 / w, p[i + 1] * 100 / h] for i in range(0, len(p), 2)]
            return {**base, "type": "polygonlabels",
                    "value": {"points": pts, "closed": True, "polygonlabels": [label]}}
    if not mask.any():
        return None
    return {**base, "type": "brushlabels",
            "value": {"format": "rle", "rle": mask_to_brush(mask), "brushlabels": [label]}}


def write_labelstudio(ms, path: str | os.PathLike, *, image_prefix: str = "/data/local-files/?d=",
                      as_predictions: bool = False, shapes: str = "brush",
                      from_name: str = "label", to_name: str = "image",
                      model_version: str = "masklab") -> list[Path]:
    """Tasks for Label Studio (``data.image`` = ``image_prefix`` + file name), each object a
    brush result (``shapes="polygon"``: polygon), as annotations or ``as_predictions``; and
    the labeling config beside it."""
    from masklab.io.atomic import atomic_open

    if shapes not in ("brush", "polygon"):
        raise InputError("shapes must be brush or polygon")
    path = Path(path)
    names = {c["id"]: c["name"] for c in ms.categories}
    tasks = []
    for k, item in enumerate(ms.items):
        results, scores = [], []
        attrs = item.attributes or [{}] * len(item.masks)
        sc = item.masks.scores if item.masks.scores is not None else [None] * len(item.masks)
        for j, (m, c, a, s) in enumerate(zip(item.masks.to_dense(), item.masks.labels, attrs, sc,
                                             strict=True)):
            rid = f"m{k}_{j}"
            r = _result(m, names.get(int(c), str(int(c))), shapes, rid, from_name, to_name,
                        s if as_predictions else None)
            if r is None:
                continue
            results.append(r)
            if s is not None:
                scores.append(float(s))
            for an, av in a.items():
                if an in ("z_order", "keyframe"):
                    continue
                results.append({"id": rid, "from_name": an, "to_name": to_name,
                                "type": "choices", "value": {"choices": [str(av)]}})
        run = {"result": results}
        task = {"id": k + 1, "data": {"image": image_prefix + item.file_name}}
        if as_predictions:
            run.update(model_version=model_version,
                       score=float(np.mean(scores)) if scores else None)
            task["predictions"] = [run]
        else:
            task["annotations"] = [run]
        tasks.append(task)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(tasks, fh)
    tag = "BrushLabels" if shapes == "brush" else "PolygonLabels"
    labels = "".join(f'    <Label value="{_xml(c["name"])}"/>\n' for c in ms.categories)
    config = (f'<View>\n  <Image name="{to_name}" value="$image" zoom="true"/>\n'
              f'  <{tag} name="{from_name}" toName="{to_name}">\n{labels}  </{tag}>\n</View>\n')
    conf = path.with_name(path.stem + ".config.xml")
    with atomic_open(conf, "w", encoding="utf-8") as fh:
        fh.write(config)
    return [path, conf]


def _xml(s: str) -> str:
    from xml.sax.saxutils import quoteattr

    return quoteattr(str(s))[1:-1]
