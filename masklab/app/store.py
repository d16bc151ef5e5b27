"""The app's data operations, independent of HTTP: projects, images, mask-native annotations
with an operation log (history, undo/redo), review status, import and export.

Every method commits before it returns; a change to an image's annotations checks and bumps
the image's ``version`` in the same transaction (``StaleVersion`` when another edit came
first), so no acknowledged edit is lost and no update silently overwrites another.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DbSession

from masklab import rle as _rle
from masklab.app import db
from masklab.errors import InputError, MasklabError

PALETTE = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0",
           "#f032e6", "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#800000",
           "#aaffc3", "#808000", "#000075", "#808080"]
INTERNAL_DIRS = ("uploads", "exports", "frames", "cache", "alpha")  # in the data folder
EXPORT_FORMATS = ("coco", "coco-polygons", "yolo", "labels", "instances", "davis", "alpha")


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


class Store:
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

    @contextlib.contextmanager
    def transaction(self):
        """A session in a transaction, committed (on disk) when the block ends."""
        lock = self._write_lock or contextlib.nullcontext()
        with lock, self.Session() as s, s.begin():
            yield s

    # --- projects ----------------------------------------------------------------------------
    def create_project(self, name: str, classes, attributes=None) -> dict:
        name = str(name).strip()
        if not name:
            raise InputError("project name is empty")
        classes = normalise_classes(classes)
        attributes = normalise_attributes(attributes)
        with self.transaction() as s:
            if s.scalar(select(db.Project).where(db.Project.name == name)) is not None:
                raise InputError(f"a project named {name!r} exists")
            p = db.Project(name=name, classes=classes, attributes=attributes)
            s.add(p)
            s.flush()
            return self._project(s, p)

    def _project(self, s: DbSession, p: db.Project) -> dict:
        counts = dict(s.execute(select(db.Image.status, func.count()).where(
            db.Image.project_id == p.id).group_by(db.Image.status)).all())
        return {"id": p.id, "name": p.name, "classes": p.classes, "attributes": p.attributes,
                "images": int(sum(counts.values())), "status": counts}

    def projects(self) -> list[dict]:
        with self.Session() as s:
            return [self._project(s, p) for p in s.scalars(select(db.Project).order_by(
                db.Project.id))]

    def project(self, project_id: int) -> dict:
        with self.Session() as s:
            return self._project(s, self._get(s, db.Project, project_id))

    def set_classes(self, project_id: int, classes) -> dict:
        classes = normalise_classes(classes)
        with self.transaction() as s:
            p = self._get(s, db.Project, project_id)
            used = set(s.scalars(select(db.Annotation.class_id).join(db.Image).where(
                db.Image.project_id == project_id).distinct()))
            missing = used - {c["id"] for c in classes}
            if missing:
                raise InputError(f"classes {sorted(missing)} are used by annotations")
            p.classes = classes
            return self._project(s, p)

    def set_attributes(self, project_id: int, attributes) -> dict:
        attributes = normalise_attributes(attributes)
        with self.transaction() as s:
            p = self._get(s, db.Project, project_id)
            p.attributes = attributes
            return self._project(s, p)

    @staticmethod
    def _get(s: DbSession, table, key: int):
        row = s.get(table, key)
        if row is None:
            raise NotFound(f"{table.__tablename__[:-1]} {key} does not exist")
        return row

    # --- images ------------------------------------------------------------------------------
    def confine(self, path: str | os.PathLike) -> Path:
        """``path`` resolved, if it lies below an allowed import root (else ``Forbidden``)."""
        p = Path(path).expanduser()
        if not p.is_absolute() and self.roots:
            p = self.roots[0] / p
        p = p.resolve()
        for root in self.roots:
            if p == root or root in p.parents:
                return p
        raise Forbidden(f"{path}: outside the folders the server may import from")

    def add_images(self, project_id: int, paths, *, base: Path | None = None) -> list[dict]:
        """Register image files (already on the server) in a project; names are relative to
        ``base``. Files already in the project are skipped."""
        from masklab.io.images import image_size

        added = []
        with self.transaction() as s:
            self._get(s, db.Project, project_id)
            known = set(s.scalars(select(db.Image.file_name).where(
                db.Image.project_id == project_id)))
            for path in paths:
                path = Path(path)
                name = path.relative_to(base).as_posix() if base else path.name
                if name in known:
                    continue
                h, w = image_size(path)
                img = db.Image(project_id=project_id, file_name=name, path=str(path),
                               width=w, height=h, sha256=file_sha256(path), status="new",
                               comment="", version=0)
                s.add(img)
                s.flush()
                known.add(name)
                added.append(self._image(img))
        return added

    def import_folder(self, project_id: int, folder: str, *, recursive: bool = True,
                      max_frames: int = 5000, quiet: bool | None = True) -> list[dict]:
        """Images below ``folder`` (an allowed root) and videos: a video's frames are
        extracted (JPEG, in the data folder) and become images ``<video>/<frame>.jpg``."""
        from masklab.io.images import find_images
        from masklab.io.video import is_video

        root = self.confine(folder)
        if not root.is_dir():
            raise InputError("no such folder", folder)
        own = [(self.data_dir / d).resolve() for d in INTERNAL_DIRS]

        def wanted(p: Path) -> bool:  # below the root (no symlink out), not the app's own
            return (p == root or root in p.parents) and not any(d in p.parents for d in own)

        files = [p.resolve() for p in find_images([root], recursive=recursive)]
        added = self.add_images(project_id, sorted(p for p in files if wanted(p)), base=root)
        pattern = "**/*" if recursive else "*"
        for v in sorted(p for p in root.glob(pattern) if p.is_file() and is_video(p)):
            v = v.resolve()
            if wanted(v):
                added += self.import_video(project_id, v, name=v.relative_to(root).with_suffix(
                    "").as_posix(), max_frames=max_frames, quiet=quiet)
        return added

    def import_video(self, project_id: int, path: Path, *, name: str, max_frames: int = 5000,
                     quiet: bool | None = True) -> list[dict]:
        """Extract the frames of a video file and add them as the images of video ``name``."""
        from masklab.io.images import write_image
        from masklab.io.video import read_video, video_info
        from masklab.progress import progress

        with self.Session() as s:
            if s.scalar(select(db.Image.id).where(db.Image.project_id == project_id,
                                                  db.Image.video == name).limit(1)):
                return []  # imported before
        info = video_info(path)
        dest = self.data_dir / "frames" / f"{file_sha256(path)[:16]}"
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for k, frame in enumerate(progress(read_video(path), desc=f"frames of {path.name}",
                                           total=info.get("frames"), quiet=quiet)):
            if k >= max_frames:
                raise InputError(f"more than {max_frames} frames; import a shorter clip", path)
            out = dest / f"{k:05d}.jpg"
            if not out.is_file():
                write_image(out, frame, quality=95)
            written.append(out)
        if not written:
            raise InputError("the video has no frame", path)
        added = self.add_images(project_id, written, base=dest)
        with self.transaction() as s:
            for a in added:
                img = s.get(db.Image, a["id"])
                img.frame = int(Path(img.file_name).stem)
                img.video = name
                img.file_name = f"{name}/{img.frame:05d}.jpg"
                a.update(self._image(img))
        return added

    def frames(self, image_id: int) -> list[dict]:
        """The frames of the image's video, in order (``[]`` for a still image)."""
        with self.Session() as s:
            img = self._get(s, db.Image, image_id)
            if img.video is None:
                return []
            rows = s.execute(select(db.Image.id, db.Image.frame).where(
                db.Image.project_id == img.project_id, db.Image.video == img.video)
                .order_by(db.Image.frame)).all()
            return [{"id": i, "frame": f} for i, f in rows]

    def upload(self, project_id: int, name: str, data: bytes, *, max_bytes: int,
               max_pixels: int) -> list[dict]:
        """Store an uploaded image (or video: its frames) after checking its size, type and
        pixel count; returns the images added."""
        from masklab.io.atomic import atomic_path
        from masklab.io.images import IMAGE_EXTENSIONS, read_image
        from masklab.io.video import VIDEO_SUFFIXES, video_info

        safe = Path(str(name).replace("\\", "/")).name
        suffix = Path(safe).suffix.lower()
        if not safe or safe.startswith(".") or suffix not in (*IMAGE_EXTENSIONS,
                                                               *VIDEO_SUFFIXES):
            raise InputError(f"{name!r}: not an image or video file name "
                             f"({', '.join((*IMAGE_EXTENSIONS, *VIDEO_SUFFIXES))})")
        if len(data) > max_bytes:
            raise InputError(f"{safe}: {len(data)} bytes, over the upload limit of {max_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        dest = self.uploads / str(project_id) / f"{digest[:16]}-{safe}"
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
            if suffix in VIDEO_SUFFIXES:
                info = video_info(tmp)
                if info["width"] * info["height"] > max_pixels:
                    raise InputError(f"{safe}: {info['width']}x{info['height']} frames, over "
                                     f"the limit of {max_pixels} pixels")
            else:
                read_image(tmp, max_pixels=max_pixels)  # refuses bombs and undecodable files
        if suffix in VIDEO_SUFFIXES:
            return self.import_video(project_id, dest, name=Path(safe).stem)
        with self.transaction() as s:
            self._get(s, db.Project, project_id)
            if s.scalar(select(db.Image).where(db.Image.project_id == project_id,
                                               db.Image.file_name == safe)) is not None:
                raise InputError(f"{safe}: an image of that name is in the project")
        out = self.add_images(project_id, [dest])
        with self.transaction() as s:  # shown under the uploaded name
            img = s.get(db.Image, out[0]["id"])
            img.file_name = safe
            return [self._image(img)]

    @staticmethod
    def _image(img: db.Image) -> dict:
        return {"id": img.id, "project_id": img.project_id, "file_name": img.file_name,
                "width": img.width, "height": img.height, "sha256": img.sha256,
                "status": img.status, "comment": img.comment, "assignee_id": img.assignee_id,
                "version": img.version, "video": img.video, "frame": img.frame}

    def images(self, project_id: int) -> list[dict]:
        with self.Session() as s:
            self._get(s, db.Project, project_id)
            rows = s.scalars(select(db.Image).where(db.Image.project_id == project_id)
                             .order_by(db.Image.file_name, db.Image.id))
            return [self._image(r) for r in rows]

    def image(self, image_id: int) -> dict:
        with self.Session() as s:
            return self._image(self._get(s, db.Image, image_id))

    def image_path(self, image_id: int) -> Path:
        with self.Session() as s:
            return Path(self._get(s, db.Image, image_id).path)

    def neighbours(self, image_id: int, n: int = 2) -> list[int]:
        """The ids of the next ``n`` images in the project's order (for prefetching)."""
        with self.Session() as s:
            img = self._get(s, db.Image, image_id)
            ids = list(s.scalars(select(db.Image.id).where(
                db.Image.project_id == img.project_id).order_by(db.Image.file_name,
                                                                db.Image.id)))
        k = ids.index(image_id)
        return ids[k + 1:k + 1 + n]

    def set_status(self, image_id: int, status: str, comment: str = "", *,
                   role: str = "admin") -> dict:
        if status not in db.STATUSES:
            raise InputError(f"status must be one of {', '.join(db.STATUSES)}")
        if status in ("approved", "rejected") and role not in ("admin", "reviewer"):
            raise Forbidden(f"only reviewers may set {status!r}")
        if status == "rejected" and not str(comment).strip():
            raise InputError("a rejection needs a comment")
        with self.transaction() as s:
            img = self._get(s, db.Image, image_id)
            img.status, img.comment = status, str(comment)
            return self._image(img)

    def assign(self, image_id: int, user_id: int | None) -> dict:
        with self.transaction() as s:
            img = self._get(s, db.Image, image_id)
            if user_id is not None:
                self._get(s, db.User, user_id)
            img.assignee_id = user_id
            return self._image(img)

    # --- annotations -------------------------------------------------------------------------
    @staticmethod
    def _ann(a: db.Annotation, height: int, width: int) -> dict:
        return {"id": a.id, "image_id": a.image_id, "class_id": a.class_id,
                "mask": {"size": [height, width], "counts": a.rle}, "area": a.area,
                "bbox": a.bbox, "source": a.source, "score": a.score, "visible": a.visible,
                "z": a.z, "track_id": a.track_id, "attributes": a.attributes or {}}

    def annotations(self, image_id: int) -> dict:
        with self.Session() as s:
            img = self._get(s, db.Image, image_id)
            rows = s.scalars(select(db.Annotation).where(db.Annotation.image_id == image_id)
                             .order_by(db.Annotation.z, db.Annotation.id))
            return {"image": self._image(img),
                    "annotations": [self._ann(a, img.height, img.width) for a in rows]}

    def _bump(self, s: DbSession, image_id: int, version: int | None) -> db.Image:
        """Check ``version`` (``None``: no check) and increment it, atomically."""
        q = update(db.Image).where(db.Image.id == image_id)
        if version is not None:
            q = q.where(db.Image.version == int(version))
        q = q.values(version=db.Image.version + 1, updated_at=db._now())
        if s.execute(q).rowcount == 0:
            img = self._get(s, db.Image, image_id)
            raise StaleVersion(image_id, img.version)
        img = s.get(db.Image, image_id)
        s.refresh(img)
        if img.status == "new":
            img.status = "in_progress"
        return img

    def _check_class(self, s: DbSession, img: db.Image, class_id: int) -> None:
        p = s.get(db.Project, img.project_id)
        if int(class_id) not in {c["id"] for c in p.classes}:
            raise InputError(f"class id {class_id} is not in project {p.name!r}")

    @staticmethod
    def _snapshot(a: db.Annotation) -> dict:
        return {"class_id": a.class_id, "rle": a.rle, "area": a.area, "bbox": a.bbox,
                "source": a.source, "score": a.score, "visible": a.visible, "z": a.z,
                "track_id": a.track_id, "attributes": a.attributes or {}}

    def create_annotation(self, image_id: int, *, class_id: int, mask: dict,
                          source: str = "hand", score: float | None = None,
                          version: int | None = None, z: int | None = None,
                          track_id: int | None = None, attributes: dict | None = None,
                          user: str = "local") -> dict:
        if source not in db.SOURCES:
            raise InputError(f"source must be one of {', '.join(db.SOURCES)}")
        with self.transaction() as s:
            img = self._bump(s, image_id, version)
            self._check_class(s, img, class_id)
            counts, area, bbox = mask_fields(mask, img.height, img.width)
            if attributes:
                attributes = check_attribute_values(
                    s.get(db.Project, img.project_id).attributes, attributes)
            if z is None:
                z = (s.scalar(select(func.max(db.Annotation.z)).where(
                    db.Annotation.image_id == image_id)) or 0) + 1
            a = db.Annotation(image_id=image_id, class_id=int(class_id), rle=counts, area=area,
                              bbox=bbox, source=source, score=score, visible=True, z=int(z),
                              track_id=track_id, attributes=dict(attributes or {}))
            s.add(a)
            s.flush()
            self._log(s, image_id, "create", a.id, None, self._snapshot(a), user)
            return {"annotation": self._ann(a, img.height, img.width), "version": img.version}

    def update_annotation(self, annotation_id: int, *, version: int | None = None,
                          user: str = "local", **fields) -> dict:
        allowed = {"class_id", "mask", "visible", "z", "attributes", "source", "score",
                   "track_id"}
        bad = set(fields) - allowed
        if bad:
            raise InputError(f"cannot change {', '.join(sorted(bad))}")
        with self.transaction() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = self._bump(s, a.image_id, version)
            before = self._snapshot(a)
            if fields.get("class_id") is not None:
                self._check_class(s, img, fields["class_id"])
                a.class_id = int(fields["class_id"])
            if fields.get("mask") is not None:
                a.rle, a.area, a.bbox = mask_fields(fields["mask"], img.height, img.width)
            if fields.get("source") is not None:
                if fields["source"] not in db.SOURCES:
                    raise InputError(f"source must be one of {', '.join(db.SOURCES)}")
                a.source = fields["source"]
            if fields.get("attributes") is not None:
                a.attributes = {**(a.attributes or {}), **check_attribute_values(
                    s.get(db.Project, img.project_id).attributes, fields["attributes"])}
            for k in ("visible", "z", "score", "track_id"):
                if fields.get(k) is not None:
                    setattr(a, k, fields[k])
            self._log(s, a.image_id, "update", a.id, before, self._snapshot(a), user)
            return {"annotation": self._ann(a, img.height, img.width), "version": img.version}

    def delete_annotation(self, annotation_id: int, *, version: int | None = None,
                          user: str = "local") -> dict:
        with self.transaction() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = self._bump(s, a.image_id, version)
            self._log(s, a.image_id, "delete", a.id, self._snapshot(a), None, user)
            s.delete(a)
            return {"deleted": annotation_id, "version": img.version}

    def _log(self, s: DbSession, image_id: int, kind: str, ann_id: int, before, after,
             user: str) -> None:
        # a new edit discards the redo stack
        s.execute(update(db.Op).where(db.Op.image_id == image_id, db.Op.undone.is_(True),
                                      db.Op.kind.in_(("create", "update", "delete")))
                  .values(kind="discarded"))
        s.add(db.Op(image_id=image_id, kind=kind, annotation_id=ann_id, before=before,
                    after=after, undone=False, user=user))

    def _apply(self, s: DbSession, image_id: int, ann_id: int, state: dict | None) -> None:
        """Make annotation ``ann_id`` equal ``state`` (``None``: absent)."""
        a = s.get(db.Annotation, ann_id)
        if state is None:
            if a is not None:
                s.delete(a)
            return
        if a is None:
            a = db.Annotation(id=ann_id, image_id=image_id)
            s.add(a)
        for k, v in state.items():
            setattr(a, k, v)

    def undo(self, image_id: int, *, version: int | None = None, user: str = "local") -> dict:
        return self._step(image_id, redo=False, version=version, user=user)

    def redo(self, image_id: int, *, version: int | None = None, user: str = "local") -> dict:
        return self._step(image_id, redo=True, version=version, user=user)

    def _step(self, image_id: int, *, redo: bool, version: int | None, user: str) -> dict:
        """Undo the newest live edit, or redo the oldest undone one, as a new op."""
        with self.transaction() as s:
            order = db.Op.id if redo else db.Op.id.desc()
            op = s.scalar(select(db.Op).where(
                db.Op.image_id == image_id, db.Op.undone.is_(redo),
                db.Op.kind.in_(("create", "update", "delete"))).order_by(order))
            if op is None:
                raise InputError(f"nothing to {'redo' if redo else 'undo'}")
            img = self._bump(s, image_id, version)
            before, after = (op.before, op.after) if redo else (op.after, op.before)
            self._apply(s, image_id, op.annotation_id, after)
            op.undone = not redo
            s.add(db.Op(image_id=image_id, kind="redo" if redo else "undo",
                        annotation_id=op.annotation_id, before=before, after=after,
                        undone=False, user=user))
            return {"version": img.version, ("redone" if redo else "undone"): op.id}

    def history(self, image_id: int) -> list[dict]:
        with self.Session() as s:
            self._get(s, db.Image, image_id)
            return [{"id": o.id, "kind": o.kind, "annotation_id": o.annotation_id,
                     "undone": o.undone, "user": o.user, "time": o.created_at.isoformat()}
                    for o in s.scalars(select(db.Op).where(db.Op.image_id == image_id)
                                       .order_by(db.Op.id))]

    def annotation_mask(self, annotation_id: int) -> tuple[np.ndarray, Path]:
        """The annotation's mask (H, W) bool and its image's path."""
        with self.Session() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = s.get(db.Image, a.image_id)
            m = _rle.decode([{"size": [img.height, img.width], "counts": a.rle}])[0]
            return m, Path(img.path)

    def alpha_path(self, annotation_id: int) -> Path:
        return self.data_dir / "alpha" / f"{int(annotation_id)}.png"

    def polygons(self, annotation_id: int, detail: float = 1.0) -> list[dict]:
        """The mask's outlines as polygons simplified to ``detail`` pixels (Douglas-Peucker):
        ``[{"points": [[x, y], ...], "hole": bool}]`` (a derived view; RLE stays the truth)."""
        import cv2

        with self.Session() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = s.get(db.Image, a.image_id)
            m = _rle.decode([{"size": [img.height, img.width], "counts": a.rle}])[0]
        contours, hierarchy = cv2.findContours(m.astype(np.uint8), cv2.RETR_CCOMP,
                                               cv2.CHAIN_APPROX_NONE)
        out = []
        for c, h in zip(contours, hierarchy[0] if hierarchy is not None else [], strict=False):
            c = cv2.approxPolyDP(c, max(float(detail), 0.0), True) if detail > 0 else c
            pts = c.reshape(-1, 2)
            if len(pts) >= 3:
                out.append({"points": (pts + 0.5).tolist(), "hole": bool(h[3] >= 0)})
        return out

    # --- video tracking ------------------------------------------------------------------------
    def track(self, annotation_id: int, backend, *, direction: str = "forward",
              frames: int = 50, user: str = "local") -> dict:
        """Propagate an annotation through its video with a video backend (``VideoSession``):
        the object keeps one ``track_id`` on every frame; frames where it was tracked before
        are updated, and the propagation stops at a frame where the object has an annotation
        from another source (a correction: it stays)."""
        from masklab.video.session import VideoSession

        if direction not in ("forward", "backward"):
            raise InputError("direction must be forward or backward")
        with self.transaction() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = s.get(db.Image, a.image_id)
            if img.video is None:
                raise InputError(f"image {img.file_name!r} is not a video frame")
            if a.track_id is None:  # the object's id across frames: its first annotation's
                a.track_id = a.id
            track_id, class_id = a.track_id, a.class_id
            mask = _rle.decode([{"size": [img.height, img.width], "counts": a.rle}])[0]
        seq = self.frames(img.id)
        ids = [f["id"] for f in seq]
        k = ids.index(img.id)
        lo, hi = (k, min(len(ids) - 1, k + int(frames))) if direction == "forward" else \
            (max(0, k - int(frames)), k)
        paths = [self.image_path(i) for i in ids]
        session = VideoSession(_FrameFiles(paths),
                               backend=backend)
        session.add_prompt(k, obj_id=1, mask=mask)
        results = session.propagate(lo, hi, direction=direction)
        order = sorted(results, key=lambda r: r[0], reverse=direction == "backward")
        done, stopped = [], None
        for t, masks in order:
            if t == k:
                continue
            with self.Session() as s:
                same = list(s.scalars(select(db.Annotation).where(
                    db.Annotation.image_id == ids[t], db.Annotation.track_id == track_id)))
            if any(x.source != "track" for x in same):
                stopped = t
                break
            m = masks.to_dense()[0] if len(masks) else None
            if m is None or not m.any():
                for x in same:
                    self.delete_annotation(x.id, user=user)
                continue
            r = _rle.encode(m)[0]
            if same:
                self.update_annotation(same[0].id, mask=r, user=user)
            else:
                self.create_annotation(ids[t], class_id=class_id, mask=r, source="track",
                                       track_id=track_id, user=user)
            done.append(t)
        return {"track_id": track_id, "frames": [seq[t]["frame"] for t in done],
                "stopped_at": None if stopped is None else seq[stopped]["frame"]}

    # --- import / export ---------------------------------------------------------------------
    def mask_set(self, project_id: int, *, with_images: list[int] | None = None,
                 quiet: bool | None = True):
        """The project's annotations as a ``MaskSet`` (masks in z order). Its items are made
        one image at a time as a writer walks them (memory stays flat over big projects);
        object ids are 1..K per still image and one id per track across a video's frames."""
        from masklab.io.convert import MaskSet

        with self.Session() as s:
            p = self._get(s, db.Project, project_id)
            cats = [{"id": c["id"], "name": c["name"]} for c in p.classes]
            q = select(db.Image.id, db.Image.file_name, db.Image.height, db.Image.width,
                       db.Image.video, db.Image.frame).where(
                db.Image.project_id == project_id)
            imgs = [tuple(r) for r in s.execute(q)]
            if with_images is not None:
                keep = set(with_images)
                imgs = [i for i in imgs if i[0] in keep]
            by_image: dict[int, list] = {}
            for row in s.execute(select(db.Annotation.image_id, db.Annotation.id,
                                        db.Annotation.class_id, db.Annotation.rle,
                                        db.Annotation.score, db.Annotation.track_id)
                                 .join(db.Image).where(db.Image.project_id == project_id)
                                 .order_by(db.Annotation.z, db.Annotation.id)):
                by_image.setdefault(row[0], []).append(tuple(row[1:]))
        imgs.sort(key=lambda i: (i[4] is not None, i[4] or "", i[5] or 0, i[1], i[0]))
        return MaskSet(cats, _LazyItems(imgs, by_image, quiet))

    def export(self, project_id: int, fmt: str, out: str | os.PathLike | None = None, *,
               quiet: bool = True) -> Path:
        """Write the project in ``fmt`` (COCO RLE, COCO polygons, YOLO-seg, label PNGs,
        instance PNGs, DAVIS palette PNGs) to ``out`` (default: a new folder under the data
        folder's ``exports/``); returns the file or folder written."""
        import time

        from masklab.io import convert as _convert

        if fmt not in EXPORT_FORMATS:
            raise InputError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        ms = self.mask_set(project_id, quiet=quiet)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if out is None:
            name = f"project{project_id}-{fmt}-{stamp}"
            out = self.exports / (name + ".json" if fmt.startswith("coco") else name)
        out = Path(out)
        if fmt == "alpha":
            self._export_alpha(project_id, out)
        elif fmt.startswith("coco"):
            _convert.write_coco(ms, out, polygons=fmt == "coco-polygons")
        else:
            _convert.WRITERS[fmt](ms, out)
        return out

    def _export_alpha(self, project_id: int, out: Path) -> None:
        """Alpha PNGs of the annotations that have one: ``<image stem>_<annotation id>.png``
        plus ``alpha.json`` (file → image, annotation, class)."""
        import shutil

        from masklab.io.atomic import write_json

        out.mkdir(parents=True, exist_ok=True)
        index = []
        with self.Session() as s:
            rows = s.execute(select(db.Annotation.id, db.Annotation.class_id,
                                    db.Image.file_name).join(db.Image).where(
                db.Image.project_id == project_id).order_by(db.Image.file_name,
                                                            db.Annotation.id)).all()
        for ann_id, class_id, file_name in rows:
            src = self.alpha_path(ann_id)
            if not src.is_file():
                continue
            name = f"{Path(file_name).stem}_{ann_id}.png"
            tmp = out / f".{name}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, out / name)
            index.append({"file": name, "image": file_name, "annotation_id": ann_id,
                          "class_id": class_id})
        write_json(out / "alpha.json", index, indent=1)

    def import_coco(self, project_id: int, coco_path: str | os.PathLike, *,
                    images_dir: str | os.PathLike | None = None, user: str = "local") -> dict:
        """Add a COCO file's images (found in ``images_dir``, below an import root) and their
        annotations (source ``import``) to the project; categories join the label schema by
        name."""
        from masklab.io.coco import load_coco

        coco_path = self.confine(coco_path)
        ds = load_coco(coco_path)
        base = self.confine(images_dir) if images_dir else coco_path.parent
        with self.transaction() as s:
            p = self._get(s, db.Project, project_id)
            classes = list(p.classes)
            by_name = {c["name"]: c["id"] for c in classes}
            mapping = {}
            for c in ds.categories:
                if c["name"] not in by_name:
                    new_id = int(c["id"]) if int(c["id"]) not in {x["id"] for x in classes} \
                        else max(x["id"] for x in classes) + 1
                    classes.append({"id": new_id, "name": c["name"],
                                    "color": PALETTE[len(classes) % len(PALETTE)]})
                    by_name[c["name"]] = new_id
                mapping[int(c["id"])] = by_name[c["name"]]
            p.classes = classes
        files = []
        for img in ds.images:
            path = (base / img["file_name"]).resolve()
            if not (path == base or base in path.parents):
                raise Forbidden(f"{img['file_name']}: outside {base}")
            if not path.is_file():
                raise InputError(f"image {img['file_name']} not found in {base}", coco_path)
            files.append(path)
        self.add_images(project_id, files, base=base)
        n = 0
        with self.Session() as s:
            ids = {i.file_name: i.id for i in s.scalars(select(db.Image).where(
                db.Image.project_id == project_id))}
        for img in ds.images:
            name = (base / img["file_name"]).resolve().relative_to(base).as_posix()
            masks = ds.masks(img["id"])
            rles = masks.to_rle()
            anns = ds.annotations_for(img["id"])
            for a, r in zip(anns, rles, strict=True):
                if not r or _rle.area([r])[0] == 0:
                    continue
                self.create_annotation(ids[name], class_id=mapping[int(a["category_id"])],
                                       mask=r, source="import", score=a.get("score"),
                                       user=user)
                n += 1
        return {"images": len(ds.images), "annotations": n}


class _FrameFiles:
    """A video's frames as image files, decoded when indexed (``VideoFrames`` takes any
    sequence)."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        from masklab.io.images import read_image

        return read_image(self.paths[i])


class _LazyItems:
    """``LabeledImage``s made when iterated (a writer's single pass), one image at a time."""

    def __init__(self, imgs, by_image, quiet):
        self.imgs, self.by_image, self.quiet = imgs, by_image, quiet

    def __len__(self) -> int:
        return len(self.imgs)

    def __iter__(self):
        from masklab.io.convert import LabeledImage
        from masklab.progress import progress
        from masklab.types import Masks

        objects: dict[str, dict] = {}
        for image_id, file_name, h, w, video, _frame in progress(
                self.imgs, desc="export", unit="img", quiet=self.quiet):
            anns = self.by_image.get(image_id, [])
            rles = [{"size": [h, w], "counts": a[2]} for a in anns]
            masks = Masks.from_rle(rles, size=(h, w)) if rles else Masks(
                np.zeros((0, h, w), bool))
            masks.labels = np.array([a[1] for a in anns], np.int64)
            masks.scores = np.array([1.0 if a[3] is None else a[3] for a in anns])
            if video is None:  # objects of a still image: 1..K
                masks.track_ids = np.arange(1, len(anns) + 1, dtype=np.int64)
            else:  # one id per object across the video's frames: 1, 2, ... by first sight
                ids = objects.setdefault(video, {})
                masks.track_ids = np.array([ids.setdefault(a[4] or -a[0], len(ids) + 1)
                                            for a in anns], np.int64)
            yield LabeledImage(file_name, masks, image_id)
