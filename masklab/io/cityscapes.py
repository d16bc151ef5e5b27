"""Cityscapes ``gtFine``: ``gtFine/<split>/<city>/<name>_gtFine_instanceIds.png`` (16-bit:
``label id * 1000 + k`` for each object of a class with instances, the label id for regions
of the others), ``..._labelIds.png`` (8-bit label ids) and ``..._polygons.json``
(``imgHeight``, ``imgWidth``, ``objects`` of ``label`` + ``polygon``, drawn in order, later on
top); images in ``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png``.

Read from the instance PNGs (one object per instance; one per class for the regions of
classes without instances — or of things Cityscapes could not separate), or with
``source="polygons"`` from the polygon files (rasterized as Cityscapes' own
``json2labelImg`` does: PIL, outline included; a ``<class>group`` label is that class
without an instance). ``unlabeled`` (id 0) is never an object. Categories are Cityscapes'
labels by id.

Written: instance PNGs, label-id PNGs and polygon files of each image (later objects over
earlier ones where they overlap). Categories are matched to Cityscapes' labels by name; the
others get ids from 34 on (with instances), listed in ``masklab_labels.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError

# (id, name, has instances): Cityscapes' label table (cityscapesscripts' labels.py)
LABELS = [
    (0, "unlabeled", False), (1, "ego vehicle", False), (2, "rectification border", False),
    (3, "out of roi", False), (4, "static", False), (5, "dynamic", False),
    (6, "ground", False), (7, "road", False), (8, "sidewalk", False), (9, "parking", False),
    (10, "rail track", False), (11, "building", False), (12, "wall", False),
    (13, "fence", False), (14, "guard rail", False), (15, "bridge", False),
    (16, "tunnel", False), (17, "pole", False), (18, "polegroup", False),
    (19, "traffic light", False), (20, "traffic sign", False), (21, "vegetation", False),
    (22, "terrain", False), (23, "sky", False), (24, "person", True), (25, "rider", True),
    (26, "car", True), (27, "truck", True), (28, "bus", True), (29, "caravan", True),
    (30, "trailer", True), (31, "train", True), (32, "motorcycle", True),
    (33, "bicycle", True),
]
NAME = {i: n for i, n, _ in LABELS}
BY_NAME = {n: i for i, n, _ in LABELS}
HAS_INSTANCES = {i for i, _, t in LABELS if t}
SUFFIX = "_gtFine_instanceIds.png"


def _files(root: Path, split: str | None, suffix: str) -> list[Path]:
    base = root / "gtFine" if (root / "gtFine").is_dir() else root
    if split is not None:
        base = base / split
        if not base.is_dir():
            raise InputError(f"no split {split!r}", base)
    files = sorted(base.rglob(f"*{suffix}"))
    if not files:
        raise InputError(f"no *{suffix} files (not a Cityscapes gtFine folder)", base)
    return files


def _image_name(f: Path, root: Path, suffix: str) -> str:
    stem = f.name[: -len(suffix)]
    parts = f.relative_to(root / "gtFine" if (root / "gtFine").is_dir() else root).parts
    return "/".join(("leftImg8bit", *parts[:-1], f"{stem}_leftImg8bit.png"))


def _extra_labels(root: Path) -> dict[int, str]:
    f = root / "masklab_labels.json"
    if not f.is_file():
        return {}
    return {int(k): v for k, v in json.loads(f.read_text()).items()}


def read_cityscapes(root: str | os.PathLike, *, split: str | None = None,
                    source: str = "instances"):
    """A Cityscapes dataset (the folder holding ``gtFine``) as a ``MaskSet``."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.io.images import read_label_png
    from masklab.types import Masks

    root = Path(root)
    if source not in ("instances", "polygons"):
        raise InputError("source must be instances or polygons")
    names = {**NAME, **_extra_labels(root)}
    items, seen = [], set()
    suffix = SUFFIX if source == "instances" else "_gtFine_polygons.json"
    for i, f in enumerate(_files(root, split, suffix)):
        if source == "instances":
            ids = read_label_png(f).astype(np.int64)
            masks, labels = [], []
            for v in np.unique(ids):
                cls = int(v // 1000) if v >= 1000 else int(v)
                if cls == 0:
                    continue
                if cls not in names:
                    raise InputError(f"label id {cls} is not a Cityscapes label", f)
                masks.append(ids == v)
                labels.append(cls)
            h, w = ids.shape
        else:
            masks, labels, (h, w) = _polygons(f, names)
        seen.update(labels)
        data = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        items.append(LabeledImage(_image_name(f, root, suffix),
                                  Masks(data, labels=np.array(labels, np.int64)), i + 1))
    cats = [{"id": k, "name": names[k]} for k in sorted(names) if k in seen]
    return MaskSet(cats, items)


def _polygons(f: Path, names: dict[int, str]):
    from PIL import Image, ImageDraw

    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
        h, w = int(doc["imgHeight"]), int(doc["imgWidth"])
        objects = doc["objects"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a Cityscapes polygon file ({e})", f) from None
    by_name = {n: k for k, n in names.items()}
    canvas = np.zeros((h, w), np.int32)  # object index + 1, later on top
    labels = []
    for obj in objects:
        if obj.get("deleted"):
            continue
        label = str(obj.get("label", ""))
        base = label[:-5] if label.endswith("group") and label not in by_name else label
        if base not in by_name:
            raise InputError(f"label {label!r} is not a Cityscapes label", f)
        img = Image.new("L", (w, h), 0)
        pts = [tuple(map(float, p)) for p in obj.get("polygon", [])]
        if len(pts) < 2:
            continue
        ImageDraw.Draw(img).polygon(pts, outline=1, fill=1)
        canvas[np.asarray(img, bool)] = len(labels) + 1
        labels.append(by_name[base])
    masks, out = [], []
    for k, c in enumerate(labels):
        m = canvas == k + 1
        if m.any() and c != 0:
            masks.append(m)
            out.append(c)
    return masks, out, (h, w)


def write_cityscapes(ms, root: str | os.PathLike, *, split: str = "train",
                     city: str = "masklab") -> list[Path]:
    """Write ``ms`` as Cityscapes ``gtFine`` files (``<city>_000000_<k>``)."""
    from masklab.io.atomic import atomic_open, staged_folder

    root = Path(root)
    ids, extra = {}, {}
    for c in ms.categories:
        n = str(c["name"])
        if n.lower() in BY_NAME:
            ids[c["id"]] = BY_NAME[n.lower()]
        else:
            ids[c["id"]] = 34 + len(extra)
            extra[ids[c["id"]]] = n
    if max(ids.values(), default=0) > 65:
        raise InputError("too many classes outside Cityscapes' labels (instance ids are "
                         "label id x 1000 + k in 16 bits)")
    final = root / "gtFine" / split / city
    out = []
    with staged_folder(final) as folder:  # plain writes there, one rename into place
        for k, item in enumerate(ms.items):
            out += _write_item(folder, k, item, city, ids, extra)
    out = [final / p.relative_to(folder) for p in out]
    if extra:
        with atomic_open(root / "masklab_labels.json", "w", encoding="utf-8") as fh:
            json.dump({str(k): v for k, v in extra.items()}, fh)
        out.append(root / "masklab_labels.json")
    return out


def _write_item(folder: Path, k: int, item, city: str, ids: dict, extra: dict) -> list[Path]:
    """One image's three gtFine files (plain writes: ``folder`` is a staged folder)."""
    from masklab.io.images import write_label_png

    h, w = item.masks.size
    stem = f"{city}_000000_{k:06d}"
    inst = np.zeros((h, w), np.int64)
    lab = np.zeros((h, w), np.int64)
    counts: dict[int, int] = {}
    objects = []
    dense = item.masks.to_dense()
    labels = item.masks.labels if item.masks.labels is not None else \
        np.ones(len(dense), np.int64)
    for m, c in zip(dense, labels, strict=True):
        cid = ids[int(c)]
        things = cid in HAS_INSTANCES or cid >= 34
        if things:
            counts[cid] = counts.get(cid, 0) + 1
            if counts[cid] > 999:
                raise InputError(f"{item.file_name}: over 999 objects of one class")
        inst[m] = cid * 1000 + counts[cid] - 1 if things else cid
        lab[m] = cid
        objects.append(cid)
    objects = [{"label": NAME.get(cid, extra.get(cid)),
                "polygon": [[p[i], p[i + 1]] for i in range(0, len(p), 2)]}
               for cid, parts in zip(objects, item.masks.to_polygons(), strict=True)
               for p in parts]
    poly = folder / f"{stem}_gtFine_polygons.json"
    poly.write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": objects}),
                    encoding="utf-8")
    return [write_label_png(folder / f"{stem}_gtFine_instanceIds.png",
                            inst.astype(np.uint16) if inst.max() > 255 else inst,
                            palette=False, atomic=False),
            write_label_png(folder / f"{stem}_gtFine_labelIds.png", lab, palette=False,
                            atomic=False),
            poly]
