"""Pascal VOC segmentation: ``SegmentationClass/`` (palette PNGs of class indices) and
``SegmentationObject/`` (palette PNGs of object indices), ``JPEGImages/``,
``ImageSets/Segmentation/<split>.txt``; 255 is VOC's "void" border, read as ignored (no
object has those pixels).

Class and object PNGs may be palette PNGs (VOC's own) or colour PNGs (as Datumaro and
CVAT export them: colours of ``labelmap.txt``, or VOC's). Objects come from
``SegmentationObject`` (each object's class is the class most of its pixels have in
``SegmentationClass``), or — without object PNGs — one object per class present.
Classes are VOC's 20 (index = category id; 0 is the background), or those of a
``labelmap.txt`` (Datumaro's ``name:r,g,b::`` lines, line order = index) when there is one.

Written: both PNG folders (later objects over earlier ones where they overlap: an index map
holds one object per pixel), the split list, and ``labelmap.txt`` when the categories are not
VOC's own. The void border is not drawn (masks have none).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
VOID = 255


def read_labelmap(path: Path) -> tuple[list[str], list[tuple[int, int, int] | None]]:
    """Datumaro's ``labelmap.txt``: names (line order = index) and their colours."""
    names, colors = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            parts = line.split(":")
            names.append(parts[0])
            try:
                colors.append(tuple(int(v) for v in parts[1].split(",")))
            except (IndexError, ValueError):
                colors.append(None)
    if not names:
        raise InputError("no labels", path)
    return names, colors


def _indices(path: Path, colors: list) -> np.ndarray:
    """A class or object PNG as indices: palette / gray PNGs as stored, colour PNGs (as
    Datumaro and CVAT write them) through the colours (``labelmap.txt``'s, else VOC's)."""
    from PIL import Image

    from masklab.io.images import read_label_png
    from masklab.types import default_palette

    with Image.open(path) as im:
        mode = im.mode
        if mode not in ("RGB", "RGBA"):
            return read_label_png(path).astype(np.int64)
        rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    palette = default_palette(256)
    table = {}
    for k in range(256):
        c = colors[k] if k < len(colors) and colors[k] is not None else tuple(palette[k])
        table.setdefault(int(c[0]) << 16 | int(c[1]) << 8 | int(c[2]), k)
    table.setdefault(224 << 16 | 224 << 8 | 192, VOID)  # VOC's void colour
    code = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    keys, inv = np.unique(code, return_inverse=True)
    missing = [int(k) for k in keys if int(k) not in table]
    if missing:
        k = missing[0]
        raise InputError(f"colour ({k >> 16}, {k >> 8 & 255}, {k & 255}) is no class's", path)
    return np.array([table[int(k)] for k in keys], np.int64)[inv.reshape(code.shape)]


def read_voc(root: str | os.PathLike, *, split: str | None = None,
             images_dir: str | os.PathLike | None = None):
    """A VOC-layout folder (or the folder holding ``VOC2012/``) as a ``MaskSet``; images
    are ``JPEGImages/<stem>.jpg``, or the file of that stem in ``images_dir``."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.types import Masks

    root = Path(root)
    for sub in ("VOC2012", "VOC2007", "VOCdevkit/VOC2012"):
        if not (root / "SegmentationClass").is_dir() and (root / sub).is_dir():
            root = root / sub
    cls_dir, obj_dir = root / "SegmentationClass", root / "SegmentationObject"
    if not cls_dir.is_dir():
        raise InputError("no SegmentationClass folder (not a VOC segmentation dataset)", root)
    names, colors = read_labelmap(root / "labelmap.txt") if \
        (root / "labelmap.txt").is_file() else (list(VOC_CLASSES), [])
    if split is not None:
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            raise InputError(f"no split {split!r}", listing)
        stems = [s.strip() for s in listing.read_text().splitlines() if s.strip()]
    else:
        stems = sorted(f.stem for f in cls_dir.glob("*.png"))
    items = []
    for i, stem in enumerate(stems):
        f = cls_dir / f"{stem}.png"
        if not f.is_file():
            raise InputError(f"no class PNG for {stem}", f)
        cls = _indices(f, colors)
        if (cls[cls != VOID] >= len(names)).any():
            raise InputError(f"class index {int(cls[cls != VOID].max())} past the "
                             f"{len(names)} classes", f)
        masks, labels = [], []
        of = obj_dir / f"{stem}.png"
        if of.is_file():
            obj = _indices(of, [])
            if obj.shape != cls.shape:
                raise InputError(f"object PNG is {obj.shape}, class PNG {cls.shape}", of)
            for k in np.unique(obj):
                if k in (0, VOID):
                    continue
                m = obj == k
                c = cls[m]
                c = c[(c != VOID) & (c != 0)]
                if not c.size:
                    continue
                masks.append(m)
                labels.append(int(np.bincount(c).argmax()))
        else:
            for k in np.unique(cls):
                if k in (0, VOID):
                    continue
                masks.append(cls == k)
                labels.append(int(k))
        name = _image_name(root, stem, images_dir)
        data = np.stack(masks) if masks else np.zeros((0, *cls.shape), bool)
        items.append(LabeledImage(name, Masks(data, labels=np.array(labels, np.int64)), i + 1))
    cats = [{"id": k, "name": n} for k, n in enumerate(names) if k > 0]
    return MaskSet(cats, items)


def _image_name(root: Path, stem: str, images_dir) -> str:
    from masklab.io.images import IMAGE_EXTENSIONS

    if images_dir is not None:
        for e in IMAGE_EXTENSIONS:
            for f in (Path(images_dir) / f"{stem}{e}", Path(images_dir) / f"{stem}{e.upper()}"):
                if f.is_file():
                    return f.name
    jpg = next((root / "JPEGImages" / f"{stem}{e}" for e in (".jpg", ".jpeg", ".png")
                if (root / "JPEGImages" / f"{stem}{e}").is_file()), None)
    return f"JPEGImages/{jpg.name}" if jpg is not None else f"{stem}.jpg"


def write_voc(ms, root: str | os.PathLike, *, split: str = "train") -> list[Path]:
    """Write ``ms`` as VOC segmentation PNGs under ``root`` (see the module's note)."""
    from masklab.io.images import write_label_png

    root = Path(root)
    names = [c["name"] for c in ms.categories]
    if all(n in VOC_CLASSES for n in names):
        index = {c["id"]: VOC_CLASSES.index(c["name"]) for c in ms.categories}
        labelmap = None
    else:
        index = {c["id"]: k + 1 for k, c in enumerate(ms.categories)}
        labelmap = ["background", *names]
    if max(index.values(), default=0) >= VOID:
        raise InputError(f"{len(names)} classes do not fit VOC's 8-bit class PNGs")
    from masklab.types import default_palette

    palette = default_palette(256)
    out, stems = [], []
    for item in ms.items:
        h, w = item.masks.size
        stem = Path(item.file_name).stem
        if stem in stems:
            raise InputError(f"two images named {stem}: VOC names files by stem")
        stems.append(stem)
        cls = np.zeros((h, w), np.uint8)
        obj = np.zeros((h, w), np.uint8)
        dense = item.masks.to_dense()
        if len(dense) >= VOID:
            raise InputError(f"{item.file_name}: {len(dense)} objects do not fit VOC's 8-bit "
                             "object PNGs")
        labels = item.masks.labels if item.masks.labels is not None else \
            np.ones(len(dense), np.int64)
        for k, (m, c) in enumerate(zip(dense, labels, strict=True)):
            cls[m] = index[int(c)]
            obj[m] = k + 1
        out.append(write_label_png(root / "SegmentationClass" / f"{stem}.png", cls,
                                   palette=palette))
        out.append(write_label_png(root / "SegmentationObject" / f"{stem}.png", obj,
                                   palette=palette))
    from masklab.io.atomic import atomic_open

    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(listing, "w") as fh:
        fh.write("".join(s + "\n" for s in stems))
    out.append(listing)
    if labelmap is not None:
        with atomic_open(root / "labelmap.txt", "w") as fh:
            fh.write("# label:color_rgb:parts:actions\n")
            for k, n in enumerate(labelmap):
                r, g, b = palette[k]
                fh.write(f"{n}:{r},{g},{b}::\n")
        out.append(root / "labelmap.txt")
    return out
