"""Projects: create, list, classes and attributes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from masklab.app import db
from masklab.app.store.base import (
    normalise_attributes,
    normalise_classes,
)
from masklab.errors import InputError


class ProjectsMixin:
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

    def _project(self, s: DbSession, p: db.Project, counts: bool = True) -> dict:
        """The project; with ``counts``, its images per status, annotated and with proposals
        (scans of the project's images: the editor, which needs the classes only, skips
        them)."""
        out = {"id": p.id, "name": p.name, "classes": p.classes, "attributes": p.attributes,
               "settings": {"order": "name", **(p.settings or {})}}
        if not counts:
            return out
        by_status = dict(s.execute(select(db.Image.status, func.count()).where(
            db.Image.project_id == p.id).group_by(db.Image.status)).all())
        marks = s.execute(select(
            func.count().filter(db.Image.n_annotations > 0),
            func.count().filter(db.Image.n_proposals > 0)).where(
            db.Image.project_id == p.id)).one()
        return {**out, "images": int(sum(by_status.values())), "status": by_status,
                "annotated": int(marks[0] or 0), "with_proposals": int(marks[1] or 0)}

    def projects(self) -> list[dict]:
        with self.Session() as s:
            return [self._project(s, p) for p in s.scalars(select(db.Project).order_by(
                db.Project.id))]

    def project(self, project_id: int, *, counts: bool = True) -> dict:
        with self.Session() as s:
            return self._project(s, self._get(s, db.Project, project_id), counts)

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
