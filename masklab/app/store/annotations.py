"""Annotations with an operation log (history, undo/redo) and optimistic versions;
masks, mattes, polygons, video tracking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session as DbSession

from masklab import rle as _rle
from masklab.app import db
from masklab.app.store.base import (
    StaleVersion,
    check_attribute_values,
    mask_fields,
)
from masklab.errors import InputError


class AnnotationsMixin:
    @staticmethod
    def _ann(a: db.Annotation, height: int, width: int) -> dict:
        return {"id": a.id, "image_id": a.image_id, "class_id": a.class_id,
                "mask": {"size": [height, width], "counts": a.rle}, "area": a.area,
                "bbox": a.bbox, "source": a.source, "score": a.score, "visible": a.visible,
                "z": a.z, "track_id": a.track_id, "attributes": a.attributes or {},
                "proposal": bool(a.proposal)}

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
                "track_id": a.track_id, "attributes": a.attributes or {},
                "proposal": bool(a.proposal)}

    @staticmethod
    def _recount(s: DbSession, img: db.Image) -> None:
        """The image's annotation and proposal counts (the list's filters read them)."""
        s.flush()
        rows = dict(s.execute(select(db.Annotation.proposal, func.count()).where(
            db.Annotation.image_id == img.id).group_by(db.Annotation.proposal)).all())
        img.n_annotations = int(rows.get(False, 0))
        img.n_proposals = int(rows.get(True, 0))

    def create_annotation(self, image_id: int, *, class_id: int, mask: dict,
                          source: str = "hand", score: float | None = None,
                          version: int | None = None, z: int | None = None,
                          track_id: int | None = None, attributes: dict | None = None,
                          proposal: bool = False, user: str = "local") -> dict:
        if not db.known_source(source):
            raise InputError(f"source must be one of {', '.join(db.SOURCES)} or model vN")
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
                              track_id=track_id, attributes=dict(attributes or {}),
                              proposal=bool(proposal))
            s.add(a)
            s.flush()
            self._log(s, image_id, "create", a.id, None, self._snapshot(a), user)
            self._recount(s, img)
            return {"annotation": self._ann(a, img.height, img.width), "version": img.version}

    def add_annotations(self, s: DbSession, image_id: int, records: list[dict], *,
                        source: str, proposal: bool = False, user: str = "local") -> list[int]:
        """Add annotations to an image inside transaction ``s`` (with the work that made
        them: an import's or a job's progress): ``records`` of ``class_id``, ``mask`` (RLE)
        and ``score``; one version bump, one op each (undo removes them one by one)."""
        if not db.known_source(source):
            raise InputError(f"source must be one of {', '.join(db.SOURCES)} or model vN")
        img = self._bump(s, image_id, None)
        classes = {c["id"] for c in s.get(db.Project, img.project_id).classes}
        z = s.scalar(select(func.max(db.Annotation.z)).where(
            db.Annotation.image_id == image_id)) or 0
        ids = []
        for rec in records:
            if int(rec["class_id"]) not in classes:
                raise InputError(f"class id {rec['class_id']} is not in the project")
            counts, area, bbox = mask_fields(rec["mask"], img.height, img.width)
            z += 1
            a = db.Annotation(image_id=image_id, class_id=int(rec["class_id"]), rle=counts,
                              area=area, bbox=bbox, source=source, score=rec.get("score"),
                              visible=True, z=z, track_id=None, attributes={},
                              proposal=bool(proposal))
            s.add(a)
            s.flush()
            self._log(s, image_id, "create", a.id, None, self._snapshot(a), user)
            ids.append(a.id)
        self._recount(s, img)
        return ids

    def review_proposals(self, project_id: int, action: str, *, class_id: int | None = None,
                         min_score: float | None = None, max_score: float | None = None,
                         image_id: int | None = None, annotation_ids=None,
                         user: str = "local") -> dict:
        """Accept (they become annotations) or reject (deleted) the project's proposals that
        match: a class, a score range, one image, or given ids. One transaction per image;
        each change is an op (undo brings it back)."""
        if action not in ("accept", "reject"):
            raise InputError("action must be accept or reject")
        q = select(db.Annotation.image_id, db.Annotation.id).join(db.Image).where(
            db.Image.project_id == project_id, db.Annotation.proposal.is_(True))
        if class_id is not None:
            q = q.where(db.Annotation.class_id == int(class_id))
        if min_score is not None:
            q = q.where(db.Annotation.score >= float(min_score))
        if max_score is not None:
            q = q.where(db.Annotation.score < float(max_score))
        if image_id is not None:
            q = q.where(db.Annotation.image_id == int(image_id))
        if annotation_ids is not None:
            q = q.where(db.Annotation.id.in_([int(a) for a in annotation_ids]))
        with self.Session() as s:
            self._get(s, db.Project, project_id)
            by_image: dict[int, list[int]] = {}
            for img_id, ann_id in s.execute(q.order_by(db.Annotation.image_id,
                                                       db.Annotation.id)):
                by_image.setdefault(img_id, []).append(ann_id)
        n = 0
        for img_id, ann_ids in by_image.items():
            with self.transaction() as s:
                img = self._bump(s, img_id, None)
                for a in s.scalars(select(db.Annotation).where(
                        db.Annotation.id.in_(ann_ids), db.Annotation.proposal.is_(True))):
                    before = self._snapshot(a)
                    if action == "accept":
                        a.proposal = False
                        self._log(s, img_id, "update", a.id, before, self._snapshot(a), user)
                    else:
                        self._log(s, img_id, "delete", a.id, before, None, user)
                        s.delete(a)
                    n += 1
                self._recount(s, img)
        return {"accepted": n if action == "accept" else 0,
                "rejected": n if action == "reject" else 0, "images": len(by_image)}

    def update_annotation(self, annotation_id: int, *, version: int | None = None,
                          user: str = "local", **fields) -> dict:
        allowed = {"class_id", "mask", "visible", "z", "attributes", "source", "score",
                   "track_id", "proposal"}
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
                if not db.known_source(fields["source"]):
                    raise InputError(f"source must be one of {', '.join(db.SOURCES)} or model vN")
                a.source = fields["source"]
            if fields.get("attributes") is not None:
                a.attributes = {**(a.attributes or {}), **check_attribute_values(
                    s.get(db.Project, img.project_id).attributes, fields["attributes"])}
            for k in ("visible", "z", "score", "track_id", "proposal"):
                if fields.get(k) is not None:
                    setattr(a, k, fields[k])
            self._log(s, a.image_id, "update", a.id, before, self._snapshot(a), user)
            self._recount(s, img)
            return {"annotation": self._ann(a, img.height, img.width), "version": img.version}

    def delete_annotation(self, annotation_id: int, *, version: int | None = None,
                          user: str = "local") -> dict:
        with self.transaction() as s:
            a = self._get(s, db.Annotation, annotation_id)
            img = self._bump(s, a.image_id, version)
            self._log(s, a.image_id, "delete", a.id, self._snapshot(a), None, user)
            s.delete(a)
            self._recount(s, img)
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
            self._recount(s, img)
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
