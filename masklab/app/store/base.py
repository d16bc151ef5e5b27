"""What every part of the store shares: errors, field checks, the session and transaction."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session as DbSession

from masklab import rle as _rle
from masklab.app import db
from masklab.errors import InputError, MasklabError

_log = logging.getLogger(__name__)

PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
           "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#800000",
           "#aaffc3", "#808000", "#000075", "#808080"]
INTERNAL_DIRS = ("uploads", "exports", "frames", "cache", "alpha")  # in the data folder
EXPORT_FORMATS = ("coco", "coco-polygons", "yolo", "labels", "instances", "davis", "alpha",
                  "labelme", "cvat", "labelstudio", "voc", "cityscapes")
IMPORT_FORMATS = ("coco", "labelme", "cvat", "labelstudio", "voc", "cityscapes", "yolo",
                  "labels", "instances", "davis")


class NotFound(MasklabError):
    pass


class StaleVersion(MasklabError):
    """The image changed since the client read it (HTTP 409)."""

    def __init__(self, image_id: int, version: int):
        self.version = version
        super().__init__(f"image {image_id} is at version {version}; reload and retry")


class Forbidden(MasklabError):
    pass


@dataclass
class Snapshot:
    """An annotation's editable fields, as stored in ``ops``."""

    class_id: int
    rle: str
    source: str = "hand"
    score: float | None = None
    visible: bool = True
    z: int = 0
    track_id: int | None = None
    attributes: dict | None = None


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def normalise_classes(classes) -> list[dict]:
    """``["cat", "dog"]`` or ``[{"name", "color"?, "id"?}]`` → ``[{"id", "name", "color"}]``."""
    out, seen = [], set()
    for k, c in enumerate(classes or []):
        if isinstance(c, str):
            c = {"name": c}
        if not isinstance(c, dict) or not str(c.get("name", "")).strip():
            raise InputError(f"class {k}: needs a non-empty name")
        name = str(c["name"]).strip()
        if name in seen:
            raise InputError(f"class {name!r} is given twice")
        seen.add(name)
        cid = int(c.get("id", k + 1))
        color = str(c.get("color") or PALETTE[k % len(PALETTE)])
        if not (len(color) == 7 and color[0] == "#"
                and all(ch in "0123456789abcdefABCDEF" for ch in color[1:])):
            raise InputError(f"class {name!r}: colour must be #rrggbb, got {color!r}")
        out.append({"id": cid, "name": name, "color": color})
    if len({c["id"] for c in out}) != len(out):
        raise InputError("class ids must be unique")
    return out


ATTRIBUTE_TYPES = ("text", "number", "bool", "choice")


def normalise_attributes(attributes) -> list[dict]:
    """``[{"name", "type": text|number|bool|choice, "values": [...] (choice)}]``, checked."""
    out, seen = [], set()
    for k, a in enumerate(attributes or []):
        if not isinstance(a, dict) or not str(a.get("name", "")).strip():
            raise InputError(f"attribute {k}: needs a non-empty name")
        name, kind = str(a["name"]).strip(), a.get("type", "text")
        if kind not in ATTRIBUTE_TYPES:
            raise InputError(f"attribute {name!r}: type must be one of "
                             f"{', '.join(ATTRIBUTE_TYPES)}")
        if name in seen:
            raise InputError(f"attribute {name!r} is given twice")
        seen.add(name)
        item = {"name": name, "type": kind}
        if kind == "choice":
            values = [str(v) for v in a.get("values") or []]
            if not values:
                raise InputError(f"attribute {name!r}: a choice needs values")
            item["values"] = values
        out.append(item)
    return out


def check_attribute_values(schema: list[dict], values) -> dict:
    """Annotation attribute values checked against the project's schema."""
    if not isinstance(values, dict):
        raise InputError("attributes must be an object")
    by_name = {a["name"]: a for a in schema}
    out = {}
    for name, v in values.items():
        a = by_name.get(name)
        if a is None:
            raise InputError(f"attribute {name!r} is not in the project's schema")
        kind = a["type"]
        if v is None:  # unset
            out[name] = None
            continue
        ok = (kind == "text" and isinstance(v, str) and len(v) <= 10_000) or \
            (kind == "number" and isinstance(v, (int, float)) and not isinstance(v, bool)
             and np.isfinite(v)) or (kind == "bool" and isinstance(v, bool)) or \
            (kind == "choice" and v in a.get("values", []))
        if not ok:
            raise InputError(f"attribute {name!r}: {v!r} is not a valid {kind}")
        out[name] = v
    return out


def mask_fields(mask_rle: dict, height: int, width: int) -> tuple[str, int, list[float]]:
    """Validate an RLE (compressed string or uncompressed counts) of an ``height×width``
    image; return (compressed counts, area, bbox)."""
    if not isinstance(mask_rle, dict) or "counts" not in mask_rle:
        raise InputError("mask must be a COCO RLE object with 'size' and 'counts'")
    size = mask_rle.get("size")
    if not isinstance(size, list) or [int(v) for v in size] != [height, width]:
        raise InputError(f"mask size {size} does not match the image ({height}, {width})")
    counts = mask_rle["counts"]
    try:
        runs = _rle.rle_counts({"counts": counts})
    except (ValueError, TypeError):
        raise InputError("mask counts are not a valid RLE") from None
    if runs.size == 0 or (runs < 0).any() or int(runs.sum()) != height * width:
        raise InputError("mask counts do not add up to the image's pixel count")
    s = counts if isinstance(counts, str) else _rle.counts_to_string(runs)
    rle = {"size": [height, width], "counts": s}
    dense = _rle.decode([rle])[0]
    area = int(dense.sum())
    if area == 0:
        raise InputError("mask is empty")
    ys, xs = np.nonzero(dense)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    return s, area, bbox


class StoreBase:
    def __init__(self, engine, data_dir: str | os.PathLike, roots=()):
        self.engine = engine
        self.Session = db.sessionmaker_for(engine)
        self.data_dir = Path(data_dir)
        self.uploads = self.data_dir / "uploads"
        self.exports = self.data_dir / "exports"
        self.roots = [Path(r).resolve() for r in roots]
        # SQLite has one writer at a time; queueing writers here (fair, no busy-wait polling)
        # keeps the latency tail short under many annotators. PostgreSQL needs no lock.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None

    def settle(self, table: str = "images") -> None:
        """On PostgreSQL, bring the planner's statistics and the visibility map up to date
        after a bulk change (an import, a pre-labelling run): what autovacuum would do a
        minute later. Until then PostgreSQL reads every skipped row of a deep page from the
        table instead of the index (measured at 100k images: page p95 74 → 23 ms).
        SQLite is left alone: it never refreshes statistics by itself, and statistics taken
        at one moment (every image still "new") steer later plans wrong (a status filter
        measured 2 → 28 ms), while without any its index heuristics fit these queries."""
        if table not in ("images", "annotations"):
            raise ValueError(table)
        if self.engine.dialect.name != "postgresql":
            return
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        except Exception as e:  # only speed depends on it
            _log.warning("could not analyze %s: %s", table, str(e).splitlines()[0])

    @contextlib.contextmanager
    def transaction(self):
        """A session in a transaction, committed (on disk) when the block ends."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self.Session() as s, s.begin():
            yield s


    @staticmethod
    def _get(s: DbSession, table, key: int):
        row = s.get(table, key)
        if row is None:
            raise NotFound(f"{table.__tablename__[:-1]} {key} does not exist")
        return row

