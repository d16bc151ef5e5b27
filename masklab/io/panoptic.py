"""COCO-panoptic: a PNG per image whose RGB encodes segment ids, plus a JSON of segments.

``id = R + 256 * G + 256**2 * B`` (panopticapi's ``rgb2id``); 0 is unlabelled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.io.atomic import write_json
from masklab.io.coco import _is_int, read_json


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` colours → ``(H, W)`` int32 segment ids (as panopticapi)."""
    c = np.asarray(rgb).astype(np.int32)
    return c[..., 0] + 256 * c[..., 1] + 65536 * c[..., 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """``(H, W)`` segment ids → ``(H, W, 3)`` uint8 colours."""
    i = np.asarray(ids).astype(np.int64)
    if i.size and (i.min() < 0 or i.max() >= 256**3):
        raise ValueError("panoptic segment ids must be within [0, 2**24)")
    return np.stack([i % 256, (i // 256) % 256, i // 65536], axis=-1).astype(np.uint8)


@dataclass
class PanopticDataset:
    """A COCO-panoptic JSON and the folder of its PNGs."""

    data: dict
    png_dir: Path
    path: Path | None = None

    def __post_init__(self) -> None:
        self.categories = {c["id"]: c for c in self.data["categories"]}
        self.annotation_by_image = {a["image_id"]: a for a in self.data["annotations"]}

    def read_rgb(self, image_id) -> np.ndarray:
        """The ``(H, W, 3)`` colours of an image's PNG."""
        from masklab.io.images import read_image

        ann = self.annotation_by_image[image_id]
        return read_image(self.png_dir / ann["file_name"], "rgb")

    def read_ids(self, image_id) -> np.ndarray:
        """The ``(H, W)`` segment-id map of an image."""
        return rgb2id(self.read_rgb(image_id))


def load_panoptic(json_path: str | os.PathLike, png_dir: str | os.PathLike, *,
                  categories: list[dict] | None = None) -> PanopticDataset:
    """Read and validate a COCO-panoptic JSON; PNGs are read on demand from ``png_dir``.

    A prediction file may leave out ``categories``: pass the ground truth's.
    """
    path = Path(json_path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("top level must be a JSON object", path)
    if categories is not None and "categories" not in data:
        data = {**data, "categories": categories}
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"missing or non-list top-level key {key!r}", path)
    cats = set()
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not _is_int(c.get("id")) or "name" not in c \
                or c.get("isthing") not in (0, 1):
            raise InputError(f"category at index {i}: needs integer id, name, isthing 0/1",
                             path)
        if c["id"] in cats:
            raise InputError(f"duplicate category id {c['id']}", path)
        cats.add(c["id"])
    images = set()
    for i, ann in enumerate(data["annotations"]):
        where = f"annotation at index {i}"
        if not isinstance(ann, dict):
            raise InputError(f"{where} is not an object", path)
        for key in ("image_id", "file_name", "segments_info"):
            if key not in ann:
                raise InputError(f"{where}: missing key {key!r}", path)
        if ann["image_id"] in images:
            raise InputError(f"duplicate annotation for image_id {ann['image_id']!r}", path)
        images.add(ann["image_id"])
        seg_ids = set()
        for seg in ann["segments_info"]:
            if not isinstance(seg, dict) or "id" not in seg or "category_id" not in seg:
                raise InputError(f"{where}: segment needs 'id' and 'category_id'", path)
            if seg["id"] in seg_ids:
                raise InputError(f"image {ann['image_id']!r}: duplicate segment id {seg['id']}",
                                 path)
            seg_ids.add(seg["id"])
            if seg["category_id"] not in cats:
                raise InputError(f"image {ann['image_id']!r}: segment {seg['id']} has unknown "
                                 f"category_id {seg['category_id']}", path)
    png_dir = Path(png_dir)
    if not png_dir.is_dir():
        raise InputError("no such folder of panoptic PNGs", png_dir)
    return PanopticDataset(data, png_dir, path)


def write_panoptic(json_path: str | os.PathLike, png_dir: str | os.PathLike, data: dict,
                   id_maps: dict[str, np.ndarray]) -> Path:
    """Write the PNGs (``file_name → (H, W) id map``) and then the JSON, each atomically."""
    from masklab.io.images import write_image

    png_dir = Path(png_dir)
    for name, ids in id_maps.items():
        write_image(png_dir / name, id2rgb(ids))
    return write_json(json_path, data)
