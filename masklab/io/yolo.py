"""YOLO segmentation labels (Ultralytics): one ``.txt`` per image, a line per object:
``class x1 y1 x2 y2 ...`` with polygon vertices normalised by the image width and height."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from masklab.errors import InputError
from masklab.types import Masks


def join_parts(parts: list[np.ndarray]) -> np.ndarray:
    """Several polygons ((K, 2) arrays) as one, joined by zero-width bridges (out and back
    along the same segment) between the closest vertices of consecutive parts, as
    Ultralytics' ``merge_multi_segment`` does: one object stays one line."""
    parts = [np.asarray(p, np.float64).reshape(-1, 2) for p in parts]
    if len(parts) == 1:
        return parts[0]
    links = []  # (vertex on part i, vertex on part i + 1), the closest pair
    for a, b in itertools.pairwise(parts):
        d = ((a[:, None] - b[None]) ** 2).sum(-1)
        links.append(np.unravel_index(int(d.argmin()), d.shape))

    def walk(i: int, start: int) -> list[np.ndarray]:
        pts = np.roll(parts[i], -start, axis=0)
        if i == len(parts) - 1:
            return [pts, pts[:1]]
        out = (links[i][0] - start) % len(pts)
        return [pts[:out + 1], *walk(i + 1, links[i][1]), pts[out:], pts[:1]]

    return np.concatenate(walk(0, 0))


def masks_to_lines(masks: Masks, class_index: dict[int, int]) -> list[str]:
    """One line per object; ``class_index`` maps ``masks.labels`` to YOLO's 0-based classes.

    An object of several parts stays one line, its polygons joined by zero-width bridges
    (``join_parts``; YOLO has no multi-polygon); holes are lost (outer contours only).
    """
    h, w = masks.size
    labels = masks.labels if masks.labels is not None else np.ones(len(masks), np.int64)
    lines = []
    for label, polys in zip(labels, masks.to_polygons(), strict=True):
        if not polys:
            continue
        cls = class_index[int(label)]
        p = join_parts([np.asarray(q).reshape(-1, 2) for q in polys]) / np.array([w, h])
        p = np.clip(p, 0.0, 1.0)
        lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in p.reshape(-1)))
    return lines


def read_label_file(path: str | os.PathLike, height: int, width: int) -> tuple[Masks, list[int]]:
    """Parse a YOLO-seg ``.txt``: ``Masks`` of the image size and each line's class index."""
    path = Path(path)
    polys, classes = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            coords = np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise InputError(f"line {n}: expected 'class x1 y1 x2 y2 ...' numbers", path) \
                from None
        if coords.size < 6 or coords.size % 2:
            raise InputError(f"line {n}: polygon has {coords.size} coordinates (needs an even "
                             "number, at least 6)", path)
        if cls < 0:
            raise InputError(f"line {n}: negative class {cls}", path)
        if coords.min() < 0 or coords.max() > 1:
            raise InputError(f"line {n}: coordinates must be normalised to [0, 1]", path)
        polys.append([(coords.reshape(-1, 2) * np.array([width, height])).reshape(-1)])
        classes.append(cls)
    if not polys:
        return Masks(np.zeros((0, height, width), bool)), []
    return Masks.from_polygons(polys, height, width), classes


def write_dataset_yaml(path: str | os.PathLike, names: list[str]) -> Path:
    """Ultralytics ``data.yaml`` naming the classes (paths left for the user to set)."""
    from masklab.io.atomic import write_text

    body = "".join(f"  {i}: {_yaml_str(n)}\n" for i, n in enumerate(names))
    return write_text(path, f"path: .\ntrain: images\nval: images\nnames:\n{body}")


def read_dataset_yaml(path: str | os.PathLike) -> list[str]:
    """Class names from a ``data.yaml`` written by ``write_dataset_yaml`` (or Ultralytics')."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML: {str(e).splitlines()[0]}", path) from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise InputError("no 'names' list or mapping", path)


def _yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
