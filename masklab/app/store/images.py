"""Images: registering files, folders, videos and uploads; the image list; status and assignee."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, func, or_, select

from masklab.app import db
from masklab.app.store.base import (
    INTERNAL_DIRS,
    Forbidden,
    file_sha256,
)
from masklab.errors import InputError, MasklabError

MAX_PAGE = 500
SORTS = ("name", "-name", "updated", "-updated", "id", "-id", "uncertain", "-uncertain")
# an image's place in the "least confident first" queue as a sort key: never scored sorts
# as -1 (last when most uncertain comes first)
QUEUE_KEY = func.coalesce(db.Image.priority, -1.0)
FRAMES = ("first", "all")


@dataclass(frozen=True)
class ImageFilter:
    """Which images a list shows and in which order. ``status``: one of ``db.STATUSES``;
    ``assignee``: a user id, or ``0`` for unassigned; ``annotated`` / ``proposals``: with
    (True) or without (False) annotations / proposals; ``name``: the file name contains it
    (any case); ``frames``: ``"first"`` lists a video once (its first frame), ``"all"`` every
    frame; ``sort``: ``name``, ``updated``, ``id`` or ``uncertain`` (the latest pre-labelling
    model's queue priority: its uncertainty, made diverse), ``-`` first for descending
    (``-uncertain``: least confident first)."""

    status: str | None = None
    assignee: int | None = None
    annotated: bool | None = None
    proposals: bool | None = None
    name: str | None = None
    frames: str = "first"
    sort: str = "name"

    def __post_init__(self):
        if self.status is not None and self.status not in db.STATUSES:
            raise InputError(f"status must be one of {', '.join(db.STATUSES)}")
        if self.sort not in SORTS:
            raise InputError(f"sort must be one of {', '.join(SORTS)}")
        if self.frames not in FRAMES:
            raise InputError(f"frames must be one of {', '.join(FRAMES)}")

    def where(self, project_id: int, videos: bool = True) -> list:
        """The conditions; ``videos`` False: the project has no video frames (the first-frame
        condition is then left out: always true, it only misleads the planner's row
        estimate — on PostgreSQL a sort spilled to disk instead of an index scan)."""
        I = db.Image
        w = [I.project_id == project_id]
        if self.frames == "first" and videos:
            w.append(or_(I.frame.is_(None), I.frame == 0))
        if self.status is not None:
            w.append(I.status == self.status)
        if self.assignee is not None:
            w.append(I.assignee_id.is_(None) if self.assignee == 0
                     else I.assignee_id == int(self.assignee))
        if self.annotated is not None:
            w.append(I.n_annotations > 0 if self.annotated else I.n_annotations == 0)
        if self.proposals is not None:
            w.append(I.n_proposals > 0 if self.proposals else I.n_proposals == 0)
        if self.name:
            w.append(I.file_name.icontains(self.name, autoescape=True))
        return w

    def _keys(self) -> tuple:
        key = self.sort.lstrip("-")
        if key == "name":  # unique in a project: the index on (project, name) is the order
            return (db.Image.file_name,)
        if key == "uncertain":
            return (QUEUE_KEY, db.Image.id)
        return (db.Image.updated_at, db.Image.id) if key == "updated" else (db.Image.id,)

    def order(self, reverse: bool = False) -> list:
        desc = self.sort.startswith("-") != reverse
        return [k.desc() if desc else k.asc() for k in self._keys()]

    def after(self, img: db.Image, forward: bool):
        """Rows after ``img`` in this order (``forward``) or before it."""
        keys = self._keys()
        values = [(-1.0 if img.priority is None else img.priority) if k is QUEUE_KEY
                  else getattr(img, k.key) for k in keys]
        larger = self.sort.startswith("-") != forward  # toward larger keys
        cond = None
        for i in reversed(range(len(keys))):
            step = keys[i] > values[i] if larger else keys[i] < values[i]
            cond = step if cond is None else or_(step, and_(keys[i] == values[i], cond))
        return cond


def _has_videos(s, project_id: int) -> bool:
    """Whether the project holds any video frame (an index lookup)."""
    return s.scalar(select(db.Image.id).where(db.Image.project_id == project_id,
                                              db.Image.video.is_not(None)).limit(1)) is not None


class ImagesMixin:
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

    def add_images(self, project_id: int, paths, *, base: Path | None = None,
                   errors: list | None = None) -> list[dict]:
        """Register image files (already on the server) in a project; names are relative to
        ``base``. Files already in the project are skipped. ``errors``: a list that gets
        ``"name: why"`` for each unreadable file, which is then skipped (else it raises)."""
        from masklab.io.images import image_size

        with self.Session() as s:
            self._get(s, db.Project, project_id)
        rows = []
        names = [Path(p).relative_to(base).as_posix() if base else Path(p).name for p in paths]
        with self.Session() as s:  # which of these names the project has already
            known = set()
            for k in range(0, len(names), 500):
                known |= set(s.scalars(select(db.Image.file_name).where(
                    db.Image.project_id == project_id,
                    db.Image.file_name.in_(names[k:k + 500]))))
        for path, name in zip(paths, names, strict=True):
            if name in known:
                continue
            path = Path(path)
            try:
                h, w = image_size(path)
                sha = file_sha256(path)
            except (MasklabError, OSError, ValueError) as e:
                if errors is None:
                    raise
                errors.append(f"{name}: {str(e).splitlines()[0]}")
                continue
            known.add(name)
            rows.append(db.Image(project_id=project_id, file_name=name, path=str(path),
                                 width=w, height=h, sha256=sha, status="new", comment="",
                                 version=0))
        with self.transaction() as s:
            s.add_all(rows)
            s.flush()
            return [self._image(img) for img in rows]

    def import_listing(self, folder: str | os.PathLike, *, recursive: bool = True
                       ) -> tuple[Path, list[Path], list[Path]]:
        """``(root, image files, video files)`` that an import of ``folder`` (below an
        allowed root) would add, sorted; the app's own folders are left out."""
        from masklab.io.images import find_images
        from masklab.io.video import is_video

        root = self.confine(folder)
        if not root.is_dir():
            raise InputError("no such folder", folder)
        own = [(self.data_dir / d).resolve() for d in INTERNAL_DIRS]

        def wanted(p: Path) -> bool:  # below the root (no symlink out), not the app's own
            return (p == root or root in p.parents) and not any(d in p.parents for d in own)

        files = [p.resolve() for p in find_images([root], recursive=recursive)]
        pattern = "**/*" if recursive else "*"
        videos = [v.resolve() for v in root.glob(pattern) if v.is_file() and is_video(v)]
        return (root, sorted(p for p in files if wanted(p)),
                sorted(v for v in videos if wanted(v)))

    def import_folder(self, project_id: int, folder: str, *, recursive: bool = True,
                      max_frames: int = 5000, quiet: bool | None = True) -> list[dict]:
        """Images below ``folder`` (an allowed root) and videos: a video's frames are
        extracted (JPEG, in the data folder) and become images ``<video>/<frame>.jpg``."""
        root, files, videos = self.import_listing(folder, recursive=recursive)
        added = self.add_images(project_id, files, base=root)
        for v in videos:
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
                "version": img.version, "video": img.video, "frame": img.frame,
                "annotations": img.n_annotations or 0, "proposals": img.n_proposals or 0}

    def images(self, project_id: int, flt: ImageFilter | None = None, *, offset: int = 0,
               limit: int = 100) -> dict:
        """One page of the project's image list under ``flt`` (default: every still image
        and each video's first frame, by name): ``{"items", "total", "offset", "limit",
        "frames"}`` (``frames``: the frame count of each video on the page)."""
        flt = flt or ImageFilter()
        offset, limit = max(0, int(offset)), max(1, min(int(limit), MAX_PAGE))
        with self.Session() as s:
            self._get(s, db.Project, project_id)
            where = flt.where(project_id, _has_videos(s, project_id))
            total = s.scalar(select(func.count()).select_from(db.Image).where(*where))
            # the page's ids first (a narrow sort, or an index scan), then their rows: sorting
            # whole rows spilled to disk on PostgreSQL at 100k images
            ids = list(s.scalars(select(db.Image.id).where(*where).order_by(*flt.order())
                                 .offset(offset).limit(limit)))
            by_id = {r.id: r for r in s.scalars(select(db.Image).where(
                db.Image.id.in_(ids)))} if ids else {}
            rows = [by_id[i] for i in ids if i in by_id]
            videos = sorted({r.video for r in rows if r.video is not None})
            frames = dict(s.execute(select(db.Image.video, func.count()).where(
                db.Image.project_id == project_id, db.Image.video.in_(videos))
                .group_by(db.Image.video)).all()) if videos else {}
            return {"items": [self._image(r) for r in rows], "total": int(total or 0),
                    "offset": offset, "limit": limit, "frames": frames}

    def image_ids(self, project_id: int, flt: ImageFilter | None = None) -> list[int]:
        """The ids of every image under ``flt``, in its order."""
        flt = flt or ImageFilter()
        with self.Session() as s:
            self._get(s, db.Project, project_id)
            return list(s.scalars(select(db.Image.id).where(
                *flt.where(project_id, _has_videos(s, project_id)))
                                  .order_by(*flt.order())))

    def all_images(self, project_id: int) -> list[dict]:
        """Every image of the project (video frames included), by name."""
        out, offset = [], 0
        while True:
            page = self.images(project_id, ImageFilter(frames="all"), offset=offset,
                               limit=MAX_PAGE)
            out += page["items"]
            offset += len(page["items"])
            if offset >= page["total"] or not page["items"]:
                return out

    def neighbour(self, image_id: int, step: int, flt: ImageFilter | None = None
                  ) -> dict | None:
        """The image ``step`` (+1 next, -1 previous) places from ``image_id`` in the list
        under ``flt`` (``None`` past the end); the image itself need not match the filter."""
        flt = flt or ImageFilter()
        with self.Session() as s:
            img = self._get(s, db.Image, image_id)
            q = select(db.Image).where(*flt.where(img.project_id, _has_videos(s, img.project_id)),
                                       flt.after(img, step > 0))
            row = s.scalars(q.order_by(*flt.order(reverse=step < 0))
                            .offset(abs(int(step)) - 1).limit(1)).first()
            return None if row is None else self._image(row)

    def image(self, image_id: int) -> dict:
        with self.Session() as s:
            return self._image(self._get(s, db.Image, image_id))

    def image_path(self, image_id: int) -> Path:
        with self.Session() as s:
            return Path(self._get(s, db.Image, image_id).path)

    def neighbours(self, image_id: int, n: int = 2) -> list[int]:
        """The ids of the next ``n`` images in the project's order (for prefetching)."""
        flt = ImageFilter(frames="all")
        with self.Session() as s:
            img = self._get(s, db.Image, image_id)
            return list(s.scalars(select(db.Image.id).where(
                *flt.where(img.project_id, _has_videos(s, img.project_id)),
                flt.after(img, True)).order_by(*flt.order())
                .limit(n)))

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

