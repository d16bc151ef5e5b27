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
  ``ds.info.description`` as JSON).
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
