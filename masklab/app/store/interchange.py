"""Import and export: COCO in; COCO, YOLO, label PNGs, DAVIS, alpha out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from masklab import rle as _rle
from masklab.app import db
from masklab.app.store.base import (
    EXPORT_FORMATS,
    PALETTE,
    Forbidden,
)
from masklab.errors import InputError


def _accepted(proposals: bool) -> list:
    """The where-clause that leaves proposals out (none when they are wanted)."""
    return [] if proposals else [db.Annotation.proposal.is_(False)]

class InterchangeMixin:
    def mask_set(self, project_id: int, *, with_images: list[int] | None = None,
                 quiet: bool | None = True, proposals: bool = False, on_item=None):
        """The project's annotations as a ``MaskSet`` (masks in z order). Its items are made
        as a writer walks them, the annotations read a chunk of images at a time (memory
        stays flat over big projects); object ids are 1..K per still image and one id per
        track across a video's frames. Proposals (a model's, not yet accepted) are left out
        unless ``proposals``; ``on_item()`` is called after each image."""
        from masklab.io.convert import MaskSet

        with self.Session() as s:
            p = self._get(s, db.Project, project_id)
            cats = [{"id": c["id"], "name": c["name"]} for c in p.classes]
            q = select(db.Image.id).where(db.Image.project_id == project_id).order_by(
                db.Image.video.is_not(None), func.coalesce(db.Image.video, ""),
                func.coalesce(db.Image.frame, 0), db.Image.file_name, db.Image.id)
            ids = list(s.scalars(q))
        if with_images is not None:
            keep = set(with_images)
            ids = [i for i in ids if i in keep]
        return MaskSet(cats, _LazyItems(self, ids, proposals, quiet, on_item))

    def export(self, project_id: int, fmt: str, out: str | os.PathLike | None = None, *,
               quiet: bool = True, proposals: bool = False, on_item=None) -> Path:
        """Write the project in ``fmt`` (COCO RLE, COCO polygons, YOLO-seg, label PNGs,
        instance PNGs, DAVIS palette PNGs) to ``out`` (default: a new folder under the data
        folder's ``exports/``); returns the file or folder written. Proposals are left out
        unless ``proposals``."""
        import time

        from masklab.io import convert as _convert

        if fmt not in EXPORT_FORMATS:
            raise InputError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        ms = self.mask_set(project_id, quiet=quiet, proposals=proposals, on_item=on_item)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if out is None:
            import uuid

            name = f"project{project_id}-{fmt}-{stamp}-{uuid.uuid4().hex[:6]}"
            out = self.exports / (name + ".json" if fmt.startswith("coco") else name)
        out = Path(out)
        if fmt == "alpha":
            self._export_alpha(project_id, out, proposals)
        elif fmt.startswith("coco"):
            _convert.write_coco(ms, out, polygons=fmt == "coco-polygons")
        elif fmt in ("cvat", "labelstudio"):  # a file (and Label Studio's config) in a folder
            name = "annotations.xml" if fmt == "cvat" else "tasks.json"
            _convert.WRITERS[fmt](ms, Path(out) / name)
        else:
            _convert.WRITERS[fmt](ms, out)
        return out

    def _export_alpha(self, project_id: int, out: Path, proposals: bool = False) -> None:
        """Alpha PNGs of the annotations that have one: ``<image stem>_<annotation id>.png``
        plus ``alpha.json`` (file → image, annotation, class)."""
        import shutil

        from masklab.io.atomic import write_json

        out.mkdir(parents=True, exist_ok=True)
        index = []
        with self.Session() as s:
            rows = s.execute(select(db.Annotation.id, db.Annotation.class_id,
                                    db.Image.file_name).join(db.Image).where(
                db.Image.project_id == project_id, *_accepted(proposals)).order_by(
                db.Image.file_name,
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
                    images_dir: str | os.PathLike | None = None, user: str = "local",
                    job=None, fmt: str = "coco") -> dict:
        """Add a COCO file's images (found in ``images_dir``, below an import root) and their
        annotations (source ``import``) to the project; categories join the label schema by
        name. ``fmt``: another format ``masklab.io.convert`` reads (``labelme``, ``cvat``,
        ``labelstudio``, ``voc``, ``cityscapes``, ``yolo``, ...; ``coco_path`` is then its
        file or folder). ``job`` (a ``JobContext``): a missing or unreadable image is
        recorded and skipped rather than stopping the import, progress is kept, and each
        image's annotations commit with the job's progress, so a resumed job adds none
        twice."""
        from masklab.io.coco import load_coco

        coco_path = self.confine(coco_path)
        if fmt == "coco":
            ds = load_coco(coco_path)
        else:
            ds = _MaskSetSource.read(fmt, coco_path, images_dir and self.confine(images_dir))
        base = self.confine(images_dir) if images_dir else \
            (coco_path.parent if coco_path.is_file() else coco_path)
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
        files, errors, missing = [], [], set()
        for img in ds.images:
            path = (base / img["file_name"]).resolve()
            if not (path == base or base in path.parents):
                raise Forbidden(f"{img['file_name']}: outside {base}")
            if not path.is_file():
                if job is None:
                    raise InputError(f"image {img['file_name']} not found in {base}",
                                     coco_path)
                errors.append(f"{img['file_name']}: not found in {base}")
                missing.add(img["id"])
                continue
            files.append(path)
        start = job.job["done"] if job is not None and job.job["runs"] > 1 else 0
        if job is not None:
            job.progress(total=len(ds.images), message=f"{len(ds.images)} images, "
                         f"{len(ds.annotations)} annotations")
            bad: list[str] = []
            self.add_images(project_id, files, base=base, errors=bad)
            errors += bad
            if start == 0:
                job.progress(errors=errors)
        else:
            self.add_images(project_id, files, base=base)
        n = 0
        with self.Session() as s:
            ids = {i.file_name: i.id for i in s.scalars(select(db.Image).where(
                db.Image.project_id == project_id))}
        for k, img in enumerate(ds.images):
            if k < start:
                continue
            if job is not None:
                job.check()
            name = (base / img["file_name"]).resolve().relative_to(base).as_posix()
            records = []
            if img["id"] not in missing and name in ids:
                masks = ds.masks(img["id"])
                for a, r in zip(ds.annotations_for(img["id"]), masks.to_rle(), strict=True):
                    if r and _rle.area([r])[0] > 0:
                        records.append({"class_id": mapping[int(a["category_id"])],
                                        "mask": r, "score": a.get("score")})
            with self.transaction() as s:
                if records:
                    n += len(self.add_annotations(s, ids[name], records, source="import",
                                                  user=user))
                if job is not None:
                    job.progress(done=k + 1, s=s)
        out = {"images": len(ds.images), "annotations": n}
        if job is not None:
            out["failed"] = len(errors)
        return out

class _MaskSetSource:
    """A ``MaskSet`` read from any format, seen as ``import_coco`` sees a COCO dataset."""

    def __init__(self, ms):
        self.categories = ms.categories
        self.images, self._items = [], {}
        for k, item in enumerate(ms.items):
            self.images.append({"id": k + 1, "file_name": item.file_name})
            self._items[k + 1] = item
        self.annotations = [0] * sum(len(i.masks) for i in ms.items)

    @classmethod
    def read(cls, fmt: str, path: Path, images_dir: Path | None):
        from masklab.io.convert import READERS

        if fmt not in READERS:
            raise InputError(f"format must be one of {', '.join(READERS)}")
        kwargs = {"images_dir": images_dir} if fmt in ("yolo", "labelme", "labels",
                                                       "instances", "voc") else {}
        if fmt == "yolo" and images_dir is None:
            raise InputError("a YOLO import needs images_dir (the image sizes)")
        return cls(READERS[fmt](path, **kwargs))

    def masks(self, image_id: int):
        return self._items[image_id].masks

    def annotations_for(self, image_id: int) -> list[dict]:
        m = self._items[image_id].masks
        scores = m.scores if m.scores is not None else [None] * len(m)
        labels = m.labels if m.labels is not None else [1] * len(m)
        return [{"category_id": int(c), "score": None if s is None else float(s)}
                for c, s in zip(labels, scores, strict=True)]


class _LazyItems:
    """``LabeledImage``s made when iterated (a writer's single pass): images and their
    annotations read ``CHUNK`` images at a time."""

    CHUNK = 500

    def __init__(self, store, ids: list[int], proposals: bool, quiet, on_item=None):
        self.store, self.ids, self.proposals = store, ids, proposals
        self.quiet, self.on_item = quiet, on_item

    def __len__(self) -> int:
        return len(self.ids)

    def _chunk(self, ids: list[int]) -> list[tuple]:
        with self.store.Session() as s:
            rows = {r[0]: tuple(r) for r in s.execute(
                select(db.Image.id, db.Image.file_name, db.Image.height, db.Image.width,
                       db.Image.video).where(db.Image.id.in_(ids)))}
            anns: dict[int, list] = {}
            for row in s.execute(select(db.Annotation.image_id, db.Annotation.id,
                                        db.Annotation.class_id, db.Annotation.rle,
                                        db.Annotation.score, db.Annotation.track_id)
                                 .where(db.Annotation.image_id.in_(ids),
                                        *_accepted(self.proposals))
                                 .order_by(db.Annotation.z, db.Annotation.id)):
                anns.setdefault(row[0], []).append(tuple(row[1:]))
        return [(*rows[i], anns.get(i, [])) for i in ids if i in rows]

    def __iter__(self):
        from masklab.progress import progress

        yield from progress(self._items(), total=len(self.ids), desc="export", unit="img",
                            quiet=self.quiet)

    def _items(self):
        from masklab.io.convert import LabeledImage
        from masklab.types import Masks

        objects: dict[str, dict] = {}
        for k in range(0, len(self.ids), self.CHUNK):
            for image_id, file_name, h, w, video, anns in self._chunk(
                    self.ids[k:k + self.CHUNK]):
                rles = [{"size": [h, w], "counts": a[2]} for a in anns]
                masks = Masks.from_rle(rles, size=(h, w)) if rles else Masks(
                    np.zeros((0, h, w), bool))
                masks.labels = np.array([a[1] for a in anns], np.int64)
                masks.scores = np.array([1.0 if a[3] is None else a[3] for a in anns])
                if video is None:  # objects of a still image: 1..K
                    masks.track_ids = np.arange(1, len(anns) + 1, dtype=np.int64)
                else:  # one id per object across the video's frames, by first sight
                    seen = objects.setdefault(video, {})
                    masks.track_ids = np.array([seen.setdefault(a[4] or -a[0], len(seen) + 1)
                                                for a in anns], np.int64)
                yield LabeledImage(file_name, masks, image_id)
                if self.on_item is not None:
                    self.on_item()
