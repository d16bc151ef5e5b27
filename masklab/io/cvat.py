"""CVAT's XML: "CVAT for images 1.1" (``<image>`` elements with shapes) and "CVAT for video
1.1" (``<track>`` elements: one object through the frames).

Shapes read: ``mask`` (CVAT's RLE — run lengths over the mask's box, row by row, starting
with a run of background — placed at its ``left`` / ``top``), ``polygon`` and ``box``
(rasterized as COCO does, as CVAT's own COCO export hands them on). ``points`` and
``polyline`` hold no area and are left out (counted in ``read_cvat``'s log). Shapes of one
label sharing a ``group_id`` are one object. Each object keeps its ``occluded``,
``z_order`` and ``<attribute>`` values (``LabeledImage.attributes``); a track's shapes carry
its id as the objects' ``track_ids`` (frames where it is ``outside`` have none of it).

Writing gives each object one ``mask`` shape (exact; a ``group_id`` is not needed), or with
``shapes="polygon"`` its outer contours as polygons (holes lost); for video, one ``track``
per track id with a keyframe on every frame it is on and an ``outside`` keyframe after its
last frame (when the video goes on).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from masklab.errors import InputError

_log = logging.getLogger(__name__)
AREA_SHAPES = ("mask", "polygon", "box")
OTHER_SHAPES = ("points", "polyline", "ellipse", "skeleton", "cuboid")
RESERVED = ("occluded", "z_order", "outside", "keyframe", "source")


# --- CVAT's RLE ------------------------------------------------------------------------------
def rle_decode(rle: str, width: int, height: int, path=None) -> np.ndarray:
    """CVAT's mask RLE (``"3, 5, 7"``: alternating runs, background first, row by row over
    a ``width`` x ``height`` box) → (height, width) bool."""
    try:
        counts = np.array([int(v) for v in rle.replace(" ", "").split(",") if v], np.int64)
    except ValueError:
        raise InputError(f"a mask's rle is not a list of numbers: {rle[:40]!r}", path) from None
    if (counts < 0).any() or counts.sum() != width * height:
        raise InputError(f"a mask's rle covers {int(counts.sum())} pixels, not its box's "
                         f"{width} x {height}", path)
    values = np.zeros(len(counts), bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape(height, width)


def rle_encode(mask: np.ndarray) -> str:
    """(h, w) bool → CVAT's RLE string (row by row, background run first)."""
    flat = mask.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return ", ".join(str(r) for r in runs)


# --- reading ---------------------------------------------------------------------------------
def _shape_mask(el, height: int, width: int, path) -> np.ndarray | None:
    from masklab.types import Masks

    tag = el.tag
    try:
        if tag == "mask":
            left, top = int(float(el.get("left"))), int(float(el.get("top")))
            w, h = int(float(el.get("width"))), int(float(el.get("height")))
            patch = rle_decode(el.get("rle", ""), w, h, path)
            out = np.zeros((height, width), bool)
            ys, ye = max(top, 0), min(top + h, height)
            xs, xe = max(left, 0), min(left + w, width)
            if ys < ye and xs < xe:
                out[ys:ye, xs:xe] = patch[ys - top:ye - top, xs - left:xe - left]
            return out
        if tag == "polygon":
            pts = [float(v) for pair in el.get("points", "").split(";") for v in pair.split(",")]
            return Masks.from_polygons([[pts]], height, width).to_dense()[0]
        if tag == "box":
            x0, y0 = float(el.get("xtl")), float(el.get("ytl"))
            x1, y1 = float(el.get("xbr")), float(el.get("ybr"))
            return Masks.from_polygons([[[x0, y0, x1, y0, x1, y1, x0, y1]]], height,
                                       width).to_dense()[0]
    except (TypeError, ValueError) as e:
        raise InputError(f"a {tag} of label {el.get('label')!r} is malformed "
                         f"({str(e).splitlines()[0]})", path) from None
    return None


def _attributes(el) -> dict:
    out: dict = {"occluded": el.get("occluded") == "1", "z_order": int(el.get("z_order", 0))}
    for a in el.findall("attribute"):
        v = a.text or ""
        out[a.get("name")] = True if v == "true" else False if v == "false" else v
    return out


def _labels(root) -> list[str]:
    names = []
    for lab in root.iterfind("./meta/*/labels/label"):
        n = lab.findtext("name")
        if n is not None and n not in names:
            names.append(n)
    return names


def read_cvat(path: str | os.PathLike, *, class_names: list[str] | None = None,
              frame_names: str = "frame_{:06d}.png"):
    """A CVAT for images or CVAT for video 1.1 XML file as a ``MaskSet`` (video frames named
    with ``frame_names``, or the ``name`` CVAT gives them)."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.types import Masks

    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise InputError(f"not a CVAT XML file ({str(e).splitlines()[0]})", path) from None
    if root.tag != "annotations":
        raise InputError(f"not a CVAT XML file (root <{root.tag}>, not <annotations>)", path)
    names = list(class_names) if class_names else _labels(root)
    skipped = 0

    def label_id(name):
        if name not in names:
            if class_names:
                raise InputError(f"label {name!r} is not one of the class names", path)
            names.append(name)
        return names.index(name) + 1

    frames: dict[int, dict] = {}  # frame -> {"name", "h", "w", "objects": [...]}
    for img in root.iter("image"):
        try:
            fid, h, w = int(img.get("id")), int(img.get("height")), int(img.get("width"))
        except (TypeError, ValueError):
            raise InputError("an <image> needs id, width and height", path) from None
        objs, groups = [], {}
        for el in img:
            if el.tag in OTHER_SHAPES:
                skipped += 1
                continue
            m = _shape_mask(el, h, w, path)
            if m is None:
                continue
            lab = label_id(el.get("label"))
            gid = int(el.get("group_id", 0) or 0)
            if gid and (lab, gid) in groups:
                objs[groups[(lab, gid)]]["mask"] |= m
                continue
            if gid:
                groups[(lab, gid)] = len(objs)
            objs.append({"mask": m, "label": lab, "track": None, "attrs": _attributes(el)})
        frames[fid] = {"name": img.get("name") or frame_names.format(fid), "h": h, "w": w,
                       "objects": objs}
    size = root.find("./meta/task/original_size") or root.find("./meta/job/original_size")
    tracks = list(root.iter("track"))
    if tracks:
        if size is None:
            raise InputError("a video file needs <meta><task><original_size>", path)
        h, w = int(size.findtext("height")), int(size.findtext("width"))
        n_frames = root.findtext("./meta/task/size") or root.findtext("./meta/job/size")
        for k in range(int(n_frames or 0)):
            frames.setdefault(k, {"name": frame_names.format(k), "h": h, "w": w,
                                  "objects": []})
        for t in tracks:
            tid, lab = int(t.get("id")) + 1, label_id(t.get("label"))
            for el in t:
                if el.tag in OTHER_SHAPES:
                    skipped += 1
                    continue
                if el.get("outside") == "1":
                    continue
                f = int(el.get("frame"))
                fr = frames.setdefault(f, {"name": frame_names.format(f), "h": h, "w": w,
                                           "objects": []})
                m = _shape_mask(el, fr["h"], fr["w"], path)
                if m is not None:
                    attrs = _attributes(el)
                    attrs["keyframe"] = el.get("keyframe") == "1"
                    fr["objects"].append({"mask": m, "label": lab, "track": tid,
                                          "attrs": attrs})
    if skipped:
        _log.info("%s: %d points / polyline shapes left out (no area)", path.name, skipped)
    items = []
    for fid in sorted(frames):
        fr = frames[fid]
        objs = sorted(fr["objects"], key=lambda o: o["attrs"]["z_order"])  # drawing order
        data = np.stack([o["mask"] for o in objs]) if objs else np.zeros((0, fr["h"], fr["w"]),
                                                                          bool)
        tracks_col = [o["track"] for o in objs]
        masks = Masks(data, labels=np.array([o["label"] for o in objs], np.int64),
                      track_ids=None if None in tracks_col or not objs else
                      np.array(tracks_col, np.int64))
        items.append(LabeledImage(fr["name"], masks, fid + 1,
                                  attributes=[o["attrs"] for o in objs]))
    return MaskSet([{"id": k + 1, "name": n} for k, n in enumerate(names)], items)


# --- writing ---------------------------------------------------------------------------------
def _el(parent, tag, text=None, **attrs):
    e = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        e.text = str(text)
    return e


def _shape(parent, mask: np.ndarray, label: str, attrs: dict, shapes: str, **extra) -> None:
    base = {"label": label} if label is not None else {}
    base.update(extra)
    base["occluded"] = int(bool(attrs.get("occluded", False)))
    base["source"] = "manual"
    base["z_order"] = int(attrs.get("z_order", 0))
    elements = []
    if shapes == "polygon":
        from masklab.types import Masks

        polys = Masks(mask[None]).to_polygons()[0]
        for p in polys:
            pts = ";".join(f"{p[i]:.2f},{p[i + 1]:.2f}" for i in range(0, len(p), 2))
            elements.append(_el(parent, "polygon", points=pts, **base))
    if not elements:
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return
        y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
        elements.append(_el(parent, "mask", rle=rle_encode(mask[y0:y1 + 1, x0:x1 + 1]),
                            left=x0, top=y0, width=x1 - x0 + 1, height=y1 - y0 + 1, **base))
    for e in elements:
        for k, v in attrs.items():
            if k in RESERVED:
                continue
            _el(e, "attribute", "true" if v is True else "false" if v is False else v, name=k)


def write_cvat(ms, path: str | os.PathLike, *, video: bool = False,
               shapes: str = "mask") -> list[Path]:
    """Write ``ms`` as CVAT for images 1.1 (or, ``video``, CVAT for video 1.1: its items
    are the frames, in order; objects need ``track_ids``)."""
    from masklab.io.atomic import atomic_open

    if shapes not in ("mask", "polygon"):
        raise InputError("shapes must be mask or polygon")
    names = {c["id"]: c["name"] for c in ms.categories}
    root = ET.Element("annotations")
    _el(root, "version", "1.1")
    meta = _el(root, "meta")
    task = _el(meta, "task")
    items = list(ms.items)
    _el(task, "size", len(items))
    _el(task, "mode", "interpolation" if video else "annotation")
    labels = _el(task, "labels")
    attr_names: dict[str, set] = {}
    for item in items:
        for a in getattr(item, "attributes", None) or []:
            for k, v in a.items():
                if k not in RESERVED and k != "keyframe":
                    attr_names.setdefault(k, set()).add(str(v))
    for c in ms.categories:
        lab = _el(labels, "label")
        _el(lab, "name", c["name"])
        if attr_names:
            attrs = _el(lab, "attributes")
            for k, vals in sorted(attr_names.items()):
                a = _el(attrs, "attribute")
                _el(a, "name", k)
                _el(a, "input_type", "text")
                _el(a, "values", "\n".join(sorted(vals)))
    if video:
        if not items:
            raise InputError("a video needs frames")
        h, w = items[0].masks.size
        size = _el(task, "original_size")
        _el(size, "width", w)
        _el(size, "height", h)
        tracks: dict[int, list] = {}
        for f, item in enumerate(items):
            if item.masks.track_ids is None and len(item.masks):
                raise InputError(f"{item.file_name}: objects without track ids cannot be "
                                 "written as a CVAT video")
            attrs = getattr(item, "attributes", None) or [{}] * len(item.masks)
            for m, c, t, a in zip(item.masks.to_dense(), item.masks.labels,
                                  item.masks.track_ids if len(item.masks) else [], attrs,
                                  strict=True):
                tracks.setdefault(int(t), []).append((f, m, int(c), a))
        for k, (_tid, shapes_) in enumerate(sorted(tracks.items())):
            tr = _el(root, "track", id=k, label=names.get(shapes_[0][2], str(shapes_[0][2])),
                     source="manual")
            prev = last_mask = last_attrs = None
            for f, m, _c, a in shapes_:
                if prev is not None and f > prev + 1:  # gone in between
                    _shape(tr, last_mask, None, last_attrs, shapes, frame=prev + 1,
                           outside=1, keyframe=1)
                _shape(tr, m, None, a, shapes, frame=f, outside=0, keyframe=1)
                prev, last_mask, last_attrs = f, m, a
            if prev is not None and prev + 1 < len(items):
                _shape(tr, last_mask, None, last_attrs, shapes, frame=prev + 1, outside=1,
                       keyframe=1)
        _order_track_shapes(root)
    else:
        for k, item in enumerate(items):
            h, w = item.masks.size
            img = _el(root, "image", id=k, name=item.file_name, width=w, height=h)
            attrs = getattr(item, "attributes", None) or [{}] * len(item.masks)
            for m, c, a in zip(item.masks.to_dense(), item.masks.labels, attrs, strict=True):
                _shape(img, m, names.get(int(c), str(int(c))), a, shapes)
    ET.indent(root)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="utf-8"?>\n')
        fh.write(ET.tostring(root, encoding="unicode"))
        fh.write("\n")
    return [Path(path)]


def _order_track_shapes(root) -> None:
    """CVAT lists a track's shapes by frame."""
    for tr in root.iter("track"):
        kids = sorted(list(tr), key=lambda e: int(e.get("frame")))
        for e in list(tr):
            tr.remove(e)
        tr.extend(kids)
