"""labelme JSON: one ``.json`` file per image (``shapes``, ``imagePath``, ``imageHeight``,
``imageWidth``, optional ``imageData``).

Reading rasterizes each shape as labelme itself does (``labelme.utils.shape_to_mask``: PIL
draws the outline and fills it): ``polygon``, ``rectangle``, ``circle``, ``oriented_rectangle``,
``point`` (a disc of radius 5), ``line`` / ``linestrip`` (10 px wide), and ``mask`` (a
base64 PNG over the shape's box, inclusive integer corners). Shapes of one label sharing a
``group_id`` are one object of several parts; a shape without one is an object of its own.
Labels become categories 1..K in first-seen order (or ``class_names``' order); labelme's
``_background_`` / ``__ignore__`` shapes are left out.

Writing gives each object polygons — the outer contours through the boundary pixels'
centres, which labelme's rasterization fills back to exactly the mask — with one
``group_id`` for an object of several parts; an object that polygons cannot hold exactly
(a hole, a part too thin for a polygon) is written as a ``mask`` shape instead, so the round
trip is exact. ``shapes="polygon"`` forces polygons (holes are then lost, and a warning
counts the objects).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError

SKIP_LABELS = ("_background_", "__ignore__")
VERSION = "5.5.0"  # the file format written (labelme 5.5 and later read it)


def shape_mask(shape: dict, height: int, width: int, path=None) -> np.ndarray:
    """One shape as an (H, W) bool mask, rasterized as labelme does."""
    from PIL import Image, ImageDraw

    kind = shape.get("shape_type") or "polygon"
    pts = shape.get("points") or []
    try:
        xy = [(float(x), float(y)) for x, y in pts]
    except (TypeError, ValueError):
        raise InputError(f"shape {shape.get('label')!r}: points must be [x, y] pairs",
                         path) from None
    if not all(math.isfinite(v) for p in xy for v in p):
        raise InputError(f"shape {shape.get('label')!r}: points must be finite", path)
    if kind == "mask":
        if shape.get("mask") is None or len(xy) != 2:
            raise InputError(f"shape {shape.get('label')!r}: a mask shape needs 'mask' (a "
                             "base64 PNG) and 2 points", path)
        patch = _b64_png(shape["mask"], path).astype(bool)
        out = np.zeros((height, width), bool)
        arr = np.asarray(xy)
        (x1, y1), (x2, y2) = arr.round().astype(int)
        if np.array_equal(arr, np.trunc(arr)):
            ph, pw = y2 - y1 + 1, x2 - x1 + 1
        else:
            ph, pw = patch.shape
        ph, pw = min(ph, patch.shape[0]), min(pw, patch.shape[1])
        ys, ye = max(y1, 0), min(y1 + ph, height)
        xs, xe = max(x1, 0), min(x1 + pw, width)
        if ys < ye and xs < xe:
            out[ys:ye, xs:xe] = patch[ys - y1:ye - y1, xs - x1:xe - x1]
        return out
    need = {"circle": 2, "rectangle": 2, "line": 2, "point": 1, "oriented_rectangle": 4}
    if kind in need and len(xy) != need[kind]:
        raise InputError(f"shape {shape.get('label')!r}: a {kind} needs {need[kind]} points, "
                         f"not {len(xy)}", path)
    img = Image.fromarray(np.zeros((height, width), np.uint8))
    draw = ImageDraw.Draw(img)
    if kind == "circle":
        (cx, cy), (px, py) = xy
        d = math.hypot(cx - px, cy - py)
        draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=1, fill=1)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=1,
                       fill=1)
    elif kind == "line":
        draw.line(xy=xy, fill=1, width=10)
    elif kind == "linestrip":
        draw.line(xy=xy, fill=1, width=10, joint="curve")
    elif kind == "point":
        (cx, cy), r = xy[0], 5
        draw.ellipse(((cx - r, cy - r), (cx + r, cy + r)), outline=1, fill=1)
    elif kind in ("polygon", "oriented_rectangle"):
        if len(xy) < 3:
            raise InputError(f"shape {shape.get('label')!r}: a polygon needs 3 points or "
                             "more", path)
        draw.polygon(xy=xy, outline=1, fill=1)
    else:
        raise InputError(f"shape {shape.get('label')!r}: unknown shape_type {kind!r}", path)
    return np.asarray(img, dtype=bool)


def _b64_png(data: str, path=None) -> np.ndarray:
    from PIL import Image

    try:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
    except Exception:
        raise InputError("a mask is not a base64-encoded PNG", path) from None


def _png_b64(arr: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def read_file(path: str | os.PathLike) -> dict:
    """A labelme file's JSON, checked for the fields it must have."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"not a labelme JSON file ({str(e).splitlines()[0]})", path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise InputError("not a labelme file: no 'shapes' list", path)
    return doc


def image_size(doc: dict, path: Path, images_dir: Path | None) -> tuple[int, int]:
    h, w = doc.get("imageHeight"), doc.get("imageWidth")
    if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
        return h, w
    if doc.get("imageData"):
        from PIL import Image

        try:
            im = Image.open(io.BytesIO(base64.b64decode(doc["imageData"])))
            return im.height, im.width
        except Exception:
            raise InputError("imageData is not a base64-encoded image", path) from None
    from masklab.io.images import image_size as _size

    for base in ([images_dir] if images_dir else []) + [path.parent]:
        f = base / str(doc.get("imagePath") or "")
        if doc.get("imagePath") and f.is_file():
            return _size(f)
    raise InputError("no imageHeight / imageWidth and no image to measure", path)


def objects(doc: dict, height: int, width: int, path=None) -> list[tuple[str, np.ndarray]]:
    """``(label, mask)`` per object, in the order they first appear (parts of a group
    joined)."""
    groups: dict[tuple, int] = {}
    out: list[list] = []
    for k, shape in enumerate(doc["shapes"]):
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise InputError(f"shape {k}: no label", path)
        label = shape["label"]
        if label in SKIP_LABELS:
            continue
        gid = shape.get("group_id")
        m = shape_mask(shape, height, width, path)
        key = (label, gid) if gid is not None else ("", -k - 1)
        if key in groups:
            out[groups[key]][1] |= m
        else:
            groups[key] = len(out)
            out.append([label, m])
    return [(label, m) for label, m in out]


def read_labelme(folder: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
                 class_names: list[str] | None = None):
    """A folder of labelme files (searched recursively) as a ``MaskSet``."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.types import Masks

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("no such folder", folder)
    files = sorted(f for f in folder.rglob("*.json") if f.name != "classes.json")
    if not files:
        raise InputError("no labelme .json files", folder)
    images = None if images_dir is None else Path(images_dir)
    names: list[str] = list(class_names or [])
    fixed = class_names is not None
    items = []
    for i, f in enumerate(files):
        doc = read_file(f)
        h, w = image_size(doc, f, images)
        objs = objects(doc, h, w, f)
        labels = []
        for label, _ in objs:
            if label not in names:
                if fixed:
                    raise InputError(f"label {label!r} is not one of the class names", f)
                names.append(label)
            labels.append(names.index(label) + 1)
        data = np.stack([m for _, m in objs]) if objs else np.zeros((0, h, w), bool)
        file_name = _image_name(doc, f, folder, images)
        items.append(LabeledImage(file_name, Masks(data, labels=np.asarray(labels, np.int64)),
                                  i + 1))
    return MaskSet([{"id": k + 1, "name": n} for k, n in enumerate(names)], items)


def _image_name(doc: dict, f: Path, folder: Path, images: Path | None) -> str:
    """The image's name: ``imagePath`` as given relative to the images folder when it lies
    there, else relative to the annotation folder; else the JSON's stem."""
    p = doc.get("imagePath")
    if not p:
        return f.relative_to(folder).with_suffix(".jpg").as_posix()
    target = (f.parent / p).resolve()
    for base in ([images] if images else []) + [folder]:
        try:
            return target.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return Path(p).name


def mask_shapes(mask: np.ndarray, label: str, group_id: int | None, *,
                polygons_only: bool = False) -> tuple[list[dict], bool]:
    """The shapes of one object: ``(shapes, exact)``. Polygons through the boundary pixels'
    centres (labelme's outline-and-fill drawing gives the mask back) when they do; else one
    ``mask`` shape (``polygons_only``: the polygons anyway, ``exact`` False)."""
    import cv2

    h, w = mask.shape
    cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                             cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1, 2) for c in cs if len(c) >= 3]
    gid = group_id if len(polys) > 1 else None

    def poly(c):
        return {"label": label, "points": [[float(x), float(y)] for x, y in c],
                "group_id": gid, "description": "", "shape_type": "polygon", "flags": {},
                "mask": None}

    shapes = [poly(c) for c in polys]
    back = np.zeros((h, w), bool)
    for s in shapes:
        back |= shape_mask(s, h, w)
    exact = bool(shapes) and np.array_equal(back, mask)
    if exact or (polygons_only and shapes):
        return shapes, exact
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return [], True
    y1, y2, x1, x2 = ys.min(), ys.max(), xs.min(), xs.max()
    return [{"label": label, "points": [[float(x1), float(y1)], [float(x2), float(y2)]],
             "group_id": None, "description": "", "shape_type": "mask", "flags": {},
             "mask": _png_b64(mask[y1:y2 + 1, x1:x2 + 1])}], True


def write_labelme(ms, folder: str | os.PathLike, *, images_dir: str | os.PathLike | None = None,
                  image_data: bool = False, shapes: str = "auto") -> list[Path]:
    """One labelme file per image in ``folder`` (``<image stem>.json``; ``imagePath``
    relative to it, pointing into ``images_dir`` when given). ``image_data``: embed the
    image (needs ``images_dir``). ``shapes``: ``auto`` (polygons where exact, else a mask
    shape) or ``polygon``."""
    from masklab.io.atomic import atomic_open

    if shapes not in ("auto", "polygon"):
        raise InputError("shapes must be auto or polygon")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {c["id"]: c["name"] for c in ms.categories}
    images = None if images_dir is None else Path(images_dir)
    out, lossy = [], []
    for item in ms.items:
        h, w = item.masks.size
        dense = item.masks.to_dense()
        labels = item.masks.labels if item.masks.labels is not None else \
            np.ones(len(dense), np.int64)
        shape_list = []
        for k, (m, c) in enumerate(zip(dense, labels, strict=True)):
            label = names.get(int(c), str(int(c)))
            s, exact = mask_shapes(m, label, k + 1, polygons_only=shapes == "polygon")
            if not exact:
                lossy.append(f"{item.file_name}: object {k + 1}")
            shape_list += s
        target = (images / item.file_name) if images else Path(item.file_name)
        rel = os.path.relpath(target.resolve(), folder.resolve()) if images else item.file_name
        doc = {"version": VERSION, "flags": {}, "shapes": shape_list,
               "imagePath": Path(rel).as_posix(), "imageData": None, "imageHeight": int(h),
               "imageWidth": int(w)}
        if image_data:
            if images is None:
                raise InputError("image_data needs the images folder")
            doc["imageData"] = base64.b64encode((images / item.file_name).read_bytes()) \
                .decode("ascii")
        dest = folder / Path(item.file_name).with_suffix(".json")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(dest, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        out.append(dest)
    if lossy:
        logging.getLogger(__name__).warning(
            "%d object(s) written as polygons lose pixels (holes; e.g. %s)", len(lossy),
            lossy[0])
    return out
