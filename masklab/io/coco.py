"""COCO instances JSON: read with validation, write atomically, convert to ``Masks``.

Format reference: https://cocodataset.org/#format-data. Validation stops at the first fault and
names the file, the record and the fault on one line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masklab import rle as _rle
from masklab.errors import InputError
from masklab.io.atomic import write_json
from masklab.types import Boxes, Keypoints, Masks


def read_json(path: str | os.PathLike):
    """Parse a JSON file; errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
                         path) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", path) from None


@dataclass
class CocoDataset:
    """A COCO instances dataset: the JSON's lists plus indexes by id."""

    images: list[dict]
    annotations: list[dict]
    categories: list[dict]
    extra: dict = field(default_factory=dict)  # info, licenses and any other top-level keys
    path: Path | None = None

    def __post_init__(self) -> None:
        self.image_by_id = {img["id"]: img for img in self.images}
        self.category_by_id = {c["id"]: c for c in self.categories}
        self._anns_by_image: dict[int, list[dict]] = {i: [] for i in self.image_by_id}
        for ann in self.annotations:
            self._anns_by_image.setdefault(ann["image_id"], []).append(ann)

    @property
    def image_ids(self) -> list[int]:
        return [img["id"] for img in self.images]

    @property
    def class_names(self) -> list[str]:
        """Names indexed by category id (gaps are empty strings), for ``Masks.class_names``."""
        return names_by_id(self.categories)

    def annotations_for(self, image_id: int) -> list[dict]:
        return self._anns_by_image.get(image_id, [])

    def masks(self, image_id: int, *, include_crowd: bool = True) -> Masks:
        """The image's annotations as ``Masks`` (labels = category ids, track_ids = each
        annotation's ``track_id`` — video tracks, as ``masklab track`` writes — else its id)."""
        img = self.image_by_id[image_id]
        h, w = img["height"], img["width"]
        anns = [a for a in self.annotations_for(image_id)
                if a.get("segmentation") and (include_crowd or not a.get("iscrowd", 0))]
        rles = [annotation_rle(a, h, w) for a in anns]
        meta = dict(labels=[a["category_id"] for a in anns],
                    track_ids=[a.get("track_id", a["id"]) for a in anns],
                    class_names=self.class_names)
        return Masks.from_rle(rles, size=(h, w), **meta)

    def boxes(self, image_id: int) -> Boxes:
        anns = [a for a in self.annotations_for(image_id) if "bbox" in a]
        return Boxes.from_xywh(np.asarray([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
                               labels=[a["category_id"] for a in anns],
                               class_names=self.class_names)

    def keypoints(self, image_id: int) -> Keypoints:
        anns = [a for a in self.annotations_for(image_id) if a.get("keypoints")]
        cat = self.category_by_id[anns[0]["category_id"]] if anns else {}
        names = cat.get("keypoints")
        k = len(names) if names else (len(anns[0]["keypoints"]) // 3 if anns else 0)
        skeleton = [(a - 1, b - 1) for a, b in cat.get("skeleton", [])]
        data = np.asarray([a["keypoints"] for a in anns], np.float64).reshape(-1, k, 3)
        return Keypoints(data, names=names, skeleton=skeleton,
                         labels=[a["category_id"] for a in anns],
                         class_names=self.class_names)

    def to_dict(self) -> dict:
        return {**self.extra, "images": self.images, "annotations": self.annotations,
                "categories": self.categories}


def names_by_id(categories: list[dict]) -> list[str]:
    """Category names in a list indexed by category id; ids not used are empty strings."""
    top = max((c["id"] for c in categories), default=-1)
    names = [""] * (top + 1)
    for c in categories:
        names[c["id"]] = c["name"]
    return names


def annotation_rle(ann: dict, height: int, width: int) -> dict:
    """Compressed RLE (``str`` counts) of an annotation's polygon or RLE segmentation."""
    seg = ann["segmentation"]
    if isinstance(seg, list):
        return Masks.from_polygons([seg], height, width).to_rle()[0]
    counts = seg["counts"]
    if isinstance(counts, list):
        return {"size": [height, width], "counts": _rle.counts_to_string(np.asarray(counts))}
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    return {"size": [height, width], "counts": counts}


def load_coco(path: str | os.PathLike, *, images_dir: str | os.PathLike | None = None
              ) -> CocoDataset:
    """Read and validate a COCO instances JSON.

    With ``images_dir``, every image file must exist there and have the size the JSON says.
    """
    path = Path(path)
    data = read_json(path)
    validate_coco(data, path)
    extra = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    ds = CocoDataset(data["images"], data.get("annotations", []), data["categories"], extra,
                     path)
    if images_dir is not None:
        check_image_files(ds, images_dir)
    return ds


def check_image_files(ds: CocoDataset, images_dir: str | os.PathLike) -> None:
    """Every image of ``ds`` exists in ``images_dir`` with the recorded size."""
    from masklab.io.images import image_size

    for img in ds.images:
        file = Path(images_dir) / img["file_name"]
        if not file.is_file():
            raise InputError(f"image {img['id']}: file {file} not found", ds.path)
        h, w = image_size(file)
        if (h, w) != (img["height"], img["width"]):
            raise InputError(f"image {img['id']} ({img['file_name']}): JSON says "
                             f"{img['width']}x{img['height']} but the file is {w}x{h}", ds.path)


def _fail(path, msg: str):
    raise InputError(msg, path)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _all_finite_numbers(values: list) -> bool:
    if not set(map(type, values)) <= {int, float}:  # bool and str are not coordinates
        return False
    total = sum(values)
    return math.isfinite(total)  # NaN or inf anywhere makes the sum non-finite


def validate_coco(data, path=None) -> None:
    """Raise ``InputError`` at the first fault of a COCO instances dict."""
    if not isinstance(data, dict):
        _fail(path, "top level must be a JSON object with images, annotations, categories")
    for key in ("images", "categories"):
        if key not in data:
            _fail(path, f"missing top-level key {key!r}")
        if not isinstance(data[key], list):
            _fail(path, f"{key!r} must be a list")
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        _fail(path, "'annotations' must be a list")

    sizes: dict[int, tuple[int, int]] = {}
    for i, img in enumerate(data["images"]):
        where = f"image at index {i}"
        if not isinstance(img, dict):
            _fail(path, f"{where} is not an object")
        for key in ("id", "width", "height", "file_name"):
            if key not in img:
                _fail(path, f"{where}: missing key {key!r}")
        if not _is_int(img["id"]):
            _fail(path, f"{where}: id must be an integer, got {img['id']!r}")
        if img["id"] in sizes:
            _fail(path, f"duplicate image id {img['id']}")
        if not (_is_int(img["width"]) and _is_int(img["height"])) \
                or img["width"] <= 0 or img["height"] <= 0:
            _fail(path, f"image {img['id']}: width and height must be positive integers")
        sizes[img["id"]] = (img["height"], img["width"])

    cats: dict[int, dict] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            _fail(path, f"category at index {i}: needs 'id' and 'name'")
        if not _is_int(cat["id"]) or cat["id"] < 0:
            _fail(path, f"category at index {i}: id must be a non-negative integer")
        if cat["id"] in cats:
            _fail(path, f"duplicate category id {cat['id']}")
        cats[cat["id"]] = cat

    seen: set[int] = set()
    with _RleStrings(path) as strings:
        _check_annotations(anns, sizes, cats, path, seen, strings)


def _check_annotations(anns: list, sizes: dict, cats: dict, path, seen: set,
                       strings: _RleStrings) -> None:
    for i, ann in enumerate(anns):
        where = f"annotation at index {i}"
        if not isinstance(ann, dict):
            _fail(path, f"{where} is not an object")
        for key in ("id", "image_id", "category_id"):
            if key not in ann:
                _fail(path, f"{where}: missing key {key!r}")
        aid = ann["id"]
        where = f"annotation {aid}"
        if not _is_int(aid):
            _fail(path, f"annotation at index {i}: id must be an integer, got {aid!r}")
        if aid in seen:
            _fail(path, f"duplicate annotation id {aid}")
        seen.add(aid)
        if ann["image_id"] not in sizes:
            _fail(path, f"{where}: unknown image_id {ann['image_id']!r}")
        if ann["category_id"] not in cats:
            _fail(path, f"{where}: unknown category_id {ann['category_id']!r}")
        h, w = sizes[ann["image_id"]]
        if "segmentation" in ann:
            _check_segmentation(ann["segmentation"], h, w, path, where, strings)
        if "bbox" in ann:
            b = ann["bbox"]
            if not (isinstance(b, list) and len(b) == 4 and all(_is_num(v) for v in b)):
                _fail(path, f"{where}: bbox must be 4 finite numbers [x, y, w, h]")
            if b[2] < 0 or b[3] < 0:
                _fail(path, f"{where}: bbox has negative width or height {b}")
        if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
            _fail(path, f"{where}: iscrowd must be 0 or 1")
        if "area" in ann and not _is_num(ann["area"]):
            _fail(path, f"{where}: area must be a finite number")
        if "keypoints" in ann:
            kp = ann["keypoints"]
            if not isinstance(kp, list) or len(kp) % 3 or not all(_is_num(v) for v in kp):
                _fail(path, f"{where}: keypoints must be a flat list of (x, y, v) numbers")
            names = cats[ann["category_id"]].get("keypoints")
            if names is not None and len(kp) != 3 * len(names):
                _fail(path, f"{where}: {len(kp) // 3} keypoints, category has {len(names)}")


class _RleStrings:
    """Compressed RLE strings met while validating, checked all at once (``rle.check_strings``)
    when the records have been read, or before another fault is reported, so that the first
    fault in file order is still the one named."""

    def __init__(self, path):
        self.path, self.where, self.strings, self.areas = path, [], [], []

    def add(self, where: str, counts: str, area: int) -> None:
        self.where.append(where)
        self.strings.append(counts)
        self.areas.append(area)

    def check(self) -> None:
        fault = _rle.check_strings(self.strings, self.areas)
        if fault is not None:
            i, why = fault
            if why.startswith("RLE counts sum"):
                _fail(self.path, f"{self.where[i]}: {why}")
            _fail(self.path, f"{self.where[i]}: bad RLE counts string ({why})")

    def __enter__(self) -> _RleStrings:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None or issubclass(kind, InputError):
            self.check()  # an earlier string's fault comes first; else the one raised


def _check_segmentation(seg, h: int, w: int, path, where: str,
                        strings: _RleStrings | None = None) -> None:
    if isinstance(seg, list):
        for j, poly in enumerate(seg):
            if not isinstance(poly, list) or not _all_finite_numbers(poly):
                _fail(path, f"{where}: polygon {j} must be a flat list of finite numbers")
            if len(poly) < 6 or len(poly) % 2:
                _fail(path, f"{where}: polygon {j} has {len(poly)} coordinates "
                      "(needs an even number, at least 6)")
        return
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        _fail(path, f"{where}: segmentation must be a polygon list or an RLE with size, counts")
    if list(seg["size"]) != [h, w]:
        _fail(path, f"{where}: RLE size {seg['size']} differs from image size [{h}, {w}]")
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(_is_int(c) and c >= 0 for c in counts) or sum(counts) != h * w:
            _fail(path, f"{where}: uncompressed RLE counts must be non-negative and sum to "
                  f"h*w = {h * w}")
    elif isinstance(counts, str) and strings is not None:
        strings.add(where, counts, h * w)
    elif isinstance(counts, str):
        try:
            total = int(_rle.string_to_counts(counts).sum())
        except ValueError as e:
            _fail(path, f"{where}: bad RLE counts string ({e})")
        if total != h * w:
            _fail(path, f"{where}: RLE counts sum to {total}, expected h*w = {h * w}")
    else:
        _fail(path, f"{where}: RLE counts must be a string or a list of integers")


def write_coco(path: str | os.PathLike, dataset: CocoDataset | dict) -> Path:
    """Validate and write a COCO instances JSON atomically."""
    data = dataset.to_dict() if isinstance(dataset, CocoDataset) else dataset
    validate_coco(data, path)
    return write_json(path, data)


def masks_to_annotations(masks: Masks, image_id: int, *, start_id: int = 1,
                         polygons: bool = False) -> list[dict]:
    """COCO annotation records for ``masks`` (``labels`` are category ids, default 1)."""
    labels = masks.labels if masks.labels is not None else np.ones(len(masks), np.int64)
    areas = masks.area
    boxes = masks.boxes.xywh
    segs = masks.to_polygons() if polygons else masks.to_rle()
    out = []
    for i in range(len(masks)):
        ann = {"id": start_id + i, "image_id": image_id, "category_id": int(labels[i]),
               "segmentation": segs[i], "area": int(areas[i]),
               "bbox": [float(v) for v in boxes[i]], "iscrowd": 0}
        if masks.scores is not None:
            ann["score"] = float(masks.scores[i])
        out.append(ann)
    return out


def masks_to_results(masks: Masks, image_id: int) -> list[dict]:
    """COCO *results* records (``image_id, category_id, segmentation, bbox, score``)."""
    labels = masks.labels if masks.labels is not None else np.ones(len(masks), np.int64)
    scores = masks.scores if masks.scores is not None else np.ones(len(masks))
    boxes = masks.boxes.xywh
    return [{"image_id": image_id, "category_id": int(labels[i]), "segmentation": r,
             "bbox": [float(v) for v in boxes[i]], "score": float(scores[i])}
            for i, r in enumerate(masks.to_rle())]


def load_results(path: str | os.PathLike, *, iou_type: str = "segm",
                 gt: CocoDataset | None = None) -> list[dict]:
    """Read and validate a COCO results JSON (a list of detections)."""
    if iou_type not in ("segm", "bbox", "keypoints"):
        raise ValueError(f"iou_type must be segm, bbox or keypoints, got {iou_type!r}")
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        _fail(path, "a results file must be a JSON list of detections")
    need = {"segm": "segmentation", "bbox": "bbox", "keypoints": "keypoints"}[iou_type]
    with _RleStrings(path) as strings:
        _check_results(data, path, iou_type, need, gt, strings)
    return data


def _check_results(data: list, path, iou_type: str, need: str, gt: CocoDataset | None,
                   strings: _RleStrings) -> None:
    for i, det in enumerate(data):
        where = f"detection at index {i}"
        if not isinstance(det, dict):
            _fail(path, f"{where} is not an object")
        for key in ("image_id", "category_id", "score", need):
            if key not in det:
                _fail(path, f"{where}: missing key {key!r} (needed for iou_type {iou_type})")
        if not _is_num(det["score"]):
            _fail(path, f"{where}: score must be a finite number")
        if gt is not None:
            if det["image_id"] not in gt.image_by_id:
                _fail(path, f"{where}: image_id {det['image_id']!r} is not in the ground truth")
            if iou_type == "segm" and isinstance(det["segmentation"], dict):
                h, w = (gt.image_by_id[det["image_id"]][k] for k in ("height", "width"))
                _check_segmentation(det["segmentation"], h, w, path, where, strings)
        if iou_type == "bbox":
            b = det["bbox"]
            if not (isinstance(b, list) and len(b) == 4 and all(_is_num(v) for v in b)):
                _fail(path, f"{where}: bbox must be 4 finite numbers [x, y, w, h]")
