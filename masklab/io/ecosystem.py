"""masklab's objects as the ecosystem's Python objects, and back (each behind its optional
extra):

- ``to_supervision(masks)`` / ``from_supervision(detections)``: ``Masks`` (with boxes from
  the masks, or given ``Boxes``) ↔ ``supervision.Detections`` (``mask``, ``xyxy``,
  ``class_id`` = labels, ``confidence`` = scores, ``tracker_id`` = track ids, class names in
  ``data["class_name"]``);
- ``to_hf_dataset(ms, images_dir)`` / ``from_hf_dataset(ds)``: a ``MaskSet`` ↔ a Hugging Face
  ``datasets.Dataset`` laid out as the Hub's segmentation datasets are: an ``image`` column
  and a ``label`` column, both ``Image`` features; ``label`` is the semantic map (pixel =
  category id, 0 nothing) or, with ``mode="instances"``, the instance map (pixel = object
  index) with the objects' categories in ``categories`` — the class names in the
  ``label`` column's metadata (``features["label"]`` carries none, so they go to
  ``ds.info.description`` as JSON);
- ``to_fiftyone(ms, images_dir)`` / ``from_fiftyone(dataset)``: a ``MaskSet`` ↔ a FiftyOne
  ``fo.Dataset`` (extra ``fiftyone``; it keeps its datasets in MongoDB): one sample per
  image, a ``Detections`` field whose ``Detection`` has the label (category name), the
  bounding box (relative ``[x, y, w, h]`` on pixel edges) and the instance mask over that box
  — or, with ``mode="semantic"``, a ``Segmentation`` field (pixel = category id) whose names
  are the dataset's ``mask_targets``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from masklab.errors import InputError


# --- supervision -----------------------------------------------------------------------------
def to_supervision(masks, boxes=None):
    """``Masks`` → ``supervision.Detections`` (boxes from the masks unless ``boxes``)."""
    try:
        import supervision as sv
    except ImportError:
        raise InputError("supervision is not installed: pip install 'masklab[interop]'") \
            from None
    dense = masks.to_dense()
    xyxy = (boxes.xyxy if boxes is not None else masks.boxes.xyxy).astype(np.float32)
    xyxy = xyxy.reshape(-1, 4)
    data = {}
    names = masks.names
    if names is not None:
        data["class_name"] = np.array(names)
    return sv.Detections(
        xyxy=xyxy, mask=dense.astype(bool),
        confidence=None if masks.scores is None else masks.scores.astype(np.float32),
        class_id=None if masks.labels is None else masks.labels.astype(int),
        tracker_id=None if masks.track_ids is None else masks.track_ids.astype(int),
        data=data)


def from_supervision(det, *, class_names: list[str] | None = None):
    """``supervision.Detections`` (with masks) → ``Masks``."""
    from masklab.types import Masks

    if det.mask is None:
        raise InputError("these detections have no masks (supervision's mask is None)")
    mask = np.asarray(det.mask, bool)
    names = class_names
    if names is None and "class_name" in (det.data or {}) and det.class_id is not None:
        top = int(np.max(det.class_id, initial=-1))
        table = [str(i) for i in range(top + 1)]
        for c, n in zip(det.class_id, det.data["class_name"], strict=True):
            table[int(c)] = str(n)
        names = table
    return Masks(mask, scores=det.confidence, labels=det.class_id,
                 track_ids=det.tracker_id, class_names=names)


# --- Hugging Face datasets -------------------------------------------------------------------
def to_hf_dataset(ms, images_dir, *, mode: str = "semantic"):
    """A ``MaskSet`` (its images read from ``images_dir``) as a ``datasets.Dataset`` with
    ``image`` and ``label`` ``Image`` columns (see the module's note)."""
    try:
        import datasets
    except ImportError:
        raise InputError("datasets is not installed: pip install 'masklab[interop]'") from None
    from PIL import Image

    from masklab.io.images import read_image

    if mode not in ("semantic", "instances"):
        raise InputError("mode must be semantic or instances")
    images_dir = Path(images_dir)
    rows: dict[str, list] = {"image": [], "label": [], "file_name": []}
    if mode == "instances":
        rows["categories"] = []
    for item in ms.items:
        img = read_image(images_dir / item.file_name)
        dense = item.masks.to_dense()
        h, w = item.masks.size
        if img.shape[:2] != (h, w):
            raise InputError(f"{item.file_name}: image {img.shape[1]}x{img.shape[0]}, "
                             f"annotations {w}x{h}", images_dir / item.file_name)
        out = np.zeros((h, w), np.int32)
        labels = item.masks.labels if item.masks.labels is not None else \
            np.ones(len(dense), np.int64)
        for k, (m, c) in enumerate(zip(dense, labels, strict=True)):
            out[m] = int(c) if mode == "semantic" else k + 1
        if out.max() > 65535:
            raise InputError("ids over 65535 do not fit a 16-bit label image")
        lab = Image.fromarray(out.astype(np.uint8 if out.max() < 256 else np.uint16))
        rows["image"].append(Image.fromarray(img))
        rows["label"].append(lab)
        rows["file_name"].append(item.file_name)
        if mode == "instances":
            rows["categories"].append([int(c) for c in labels])
    features = {"image": datasets.Image(), "label": datasets.Image(),
                "file_name": datasets.Value("string")}
    if mode == "instances":
        features["categories"] = datasets.Sequence(datasets.Value("int32"))
    ds = datasets.Dataset.from_dict(rows, features=datasets.Features(features))
    ds.info.description = json.dumps({"masklab": {"mode": mode,
                                                  "categories": ms.categories}})
    return ds


def from_hf_dataset(ds, *, image_column: str = "image", label_column: str = "label",
                    class_names: list[str] | None = None, mode: str | None = None,
                    background: int | None = 0, ignore_index: int | None = 255):
    """A ``datasets.Dataset`` with image and label-map columns → a ``MaskSet``: semantic
    maps give one object per class present (``background`` / ``ignore_index`` pixels left
    out), instance maps (``mode="instances"``, with ``categories``) one per object."""
    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.types import Masks

    meta = {}
    try:
        meta = json.loads(ds.info.description or "{}").get("masklab", {})
    except (ValueError, AttributeError):
        meta = {}
    mode = mode or meta.get("mode", "semantic")
    for col in (image_column, label_column):
        if col not in ds.column_names:
            raise InputError(f"no column {col!r} (columns: {', '.join(ds.column_names)})")
    items, seen = [], set()
    for k, row in enumerate(ds):
        lab = np.asarray(row[label_column])
        if lab.ndim == 3:
            lab = lab[..., 0]
        lab = lab.astype(np.int64)
        name = row.get("file_name") or f"{k:06d}.png"
        if mode == "instances":
            cats = row.get("categories") or []
            ids = [v for v in np.unique(lab) if v != 0]
            masks = [lab == v for v in ids]
            labels = [int(cats[v - 1]) if v - 1 < len(cats) else 1 for v in ids]
        else:
            ids = [v for v in np.unique(lab) if v != background and v != ignore_index]
            masks = [lab == v for v in ids]
            labels = [int(v) for v in ids]
        seen.update(labels)
        data = np.stack(masks) if masks else np.zeros((0, *lab.shape), bool)
        items.append(LabeledImage(name, Masks(data, labels=np.array(labels, np.int64)), k + 1))
    if meta.get("categories"):
        cats = meta["categories"]
    elif class_names is not None:
        cats = [{"id": i, "name": n} for i, n in enumerate(class_names) if i in seen]
    else:
        cats = [{"id": i, "name": str(i)} for i in sorted(seen)]
    return MaskSet(cats, items)


# --- FiftyOne --------------------------------------------------------------------------------
def _fiftyone():
    try:
        import fiftyone as fo
    except ImportError:
        raise InputError("fiftyone is not installed: pip install 'masklab[fiftyone]' (in an "
                         "environment of its own: its pins differ from the app's)") from None
    return fo


def to_fiftyone(ms, images_dir, *, name: str | None = None, field: str = "ground_truth",
                mode: str = "instances", persistent: bool = False):
    """A ``MaskSet`` as a FiftyOne dataset over the images in ``images_dir`` (see the
    module's note); ``name``: the dataset's name (default: FiftyOne picks one)."""
    fo = _fiftyone()
    if mode not in ("instances", "semantic"):
        raise InputError("mode must be instances or semantic")
    images_dir = Path(images_dir)
    names = {int(c["id"]): str(c["name"]) for c in ms.categories}
    ds = fo.Dataset(name) if name else fo.Dataset()
    ds.persistent = persistent
    if mode == "semantic":
        ds.mask_targets = {field: {i: n for i, n in names.items()}}
    samples = []
    for item in ms.items:
        path = images_dir / item.file_name
        if not path.is_file():
            raise InputError(f"{item.file_name}: no such image in {images_dir}", path)
        h, w = item.masks.size
        dense = item.masks.to_dense()
        labels = item.masks.labels if item.masks.labels is not None else \
            np.ones(len(dense), np.int64)
        sample = fo.Sample(filepath=str(path.resolve()))
        sample["masklab_size"] = [int(w), int(h)]
        sample["masklab_file_name"] = item.file_name
        if mode == "semantic":
            lab = np.zeros((h, w), np.uint8 if max(names, default=0) < 256 else np.uint16)
            for m, c in zip(dense, labels, strict=True):
                lab[m] = int(c)
            sample[field] = fo.Segmentation(mask=lab)
        else:
            dets = []
            scores = item.masks.scores
            for k, (m, c) in enumerate(zip(dense, labels, strict=True)):
                ys, xs = np.nonzero(m)
                if not len(ys):
                    continue
                y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                d = fo.Detection(label=names.get(int(c), str(int(c))),
                                 bounding_box=[x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h],
                                 mask=m[y0:y1, x0:x1].copy())
                if scores is not None:
                    d.confidence = float(scores[k])
                if item.attributes and k < len(item.attributes):
                    for key, v in item.attributes[k].items():
                        d[str(key)] = v
                dets.append(d)
            sample[field] = fo.Detections(detections=dets)
        samples.append(sample)
    ds.add_samples(samples)
    return ds


def from_fiftyone(dataset, *, field: str = "ground_truth", categories: list[dict] | None = None):
    """A FiftyOne dataset's ``Detections`` (with instance masks) or ``Segmentation`` field →
    a ``MaskSet`` (file names relative to the images' common folder; categories by name,
    numbered 1.. in order of first appearance unless ``categories`` are given)."""
    import os

    from masklab.io.convert import LabeledImage, MaskSet
    from masklab.io.images import image_size
    from masklab.types import Masks

    fo = _fiftyone()
    schema = dataset.get_field_schema()
    if field not in schema:
        raise InputError(f"the dataset has no field {field!r} (fields: {', '.join(schema)})")
    by_name = {str(c["name"]): int(c["id"]) for c in categories or []}
    targets = (dataset.mask_targets or {}).get(field) or dataset.default_mask_targets or {}
    paths = dataset.values("filepath")
    root = Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else Path()

    def cat(name: str) -> int:
        if name not in by_name:
            by_name[name] = max(by_name.values(), default=0) + 1
        return by_name[name]

    items = []
    for k, sample in enumerate(dataset.iter_samples()):
        size = sample["masklab_size"] if sample.has_field("masklab_size") else None
        if size:
            w, h = (int(v) for v in size)
        else:
            h, w = image_size(sample.filepath)
        value = sample[field]
        masks, labels, scores = [], [], []
        if isinstance(value, fo.Segmentation):
            lab = np.asarray(value.get_mask())
            if lab.ndim == 3:
                lab = lab[..., 0]
            for v in np.unique(lab):
                if v == 0:
                    continue
                masks.append(lab == v)
                labels.append(cat(str(targets.get(int(v), int(v)))) if targets or by_name
                              else int(v))
        elif value is not None:
            for d in value.detections:
                if d.mask is None:
                    raise InputError(f"{sample.filepath}: a detection without a mask")
                bx, by, bw, bh = d.bounding_box
                x0, y0 = round(bx * w), round(by * h)
                pw, ph = max(1, round((bx + bw) * w) - x0), max(1, round((by + bh) * h) - y0)
                m = np.asarray(d.mask, bool)
                if m.shape != (ph, pw):  # a mask of another size: stretched over its box
                    import cv2

                    m = cv2.resize(m.astype(np.uint8), (pw, ph),
                                   interpolation=cv2.INTER_NEAREST) > 0
                full = np.zeros((h, w), bool)
                full[y0:y0 + ph, x0:x0 + pw] = m[:h - y0, :w - x0]
                masks.append(full)
                labels.append(cat(str(d.label)))
                scores.append(d.confidence)
        data = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        sc = None if not scores or any(s is None for s in scores) else scores
        if sample.has_field("masklab_file_name") and sample["masklab_file_name"]:
            name = str(sample["masklab_file_name"])
        else:
            name = Path(sample.filepath).resolve().relative_to(root.resolve()).as_posix()
        items.append(LabeledImage(name, Masks(data, labels=np.array(labels, np.int64),
                                              scores=sc), k + 1))
    if categories:
        cats = list(categories)
    elif targets and not by_name:
        cats = [{"id": int(i), "name": str(n)} for i, n in sorted(targets.items())]
    else:
        cats = [{"id": i, "name": n} for n, i in sorted(by_name.items(), key=lambda t: t[1])]
    return MaskSet(cats, items)
