"""Models trained on a project: versions (checkpoint folder, metrics, the images each saw),
each image's uncertainty under the latest pre-labelling model, the project's queue order."""

from __future__ import annotations

from sqlalchemy import func, select, update

from masklab.app import db
from masklab.errors import InputError

ORDERS = ("name", "uncertain")  # the project's queue: by name, or least confident first


class ModelsMixin:
    def add_model(self, project_id: int, *, task: str, arch: str, path: str, classes: list,
                  metrics: dict, image_ids: dict, job_id: int | None = None,
                  user: str = "local") -> dict:
        """Record a trained model as the project's next version."""
        with self.transaction() as s:
            self._get(s, db.Project, project_id)
            if job_id is not None:  # a job that registered its model before a crash
                old = s.scalar(select(db.TrainedModel).where(
                    db.TrainedModel.project_id == project_id, db.TrainedModel.job_id == job_id))
                if old is not None:
                    return self._model(old)
            version = 1 + int(s.scalar(select(func.max(db.TrainedModel.version)).where(
                db.TrainedModel.project_id == project_id)) or 0)
            m = db.TrainedModel(project_id=project_id, version=version, task=task, arch=arch,
                                path=str(path), classes=list(classes), metrics=dict(metrics),
                                image_ids=dict(image_ids), job_id=job_id, created_by=user)
            s.add(m)
            s.flush()
            return self._model(m)

    @staticmethod
    def _model(m: db.TrainedModel, *, ids: bool = False) -> dict:
        out = {"id": m.id, "project_id": m.project_id, "version": m.version, "task": m.task,
               "arch": m.arch, "classes": m.classes, "metrics": m.metrics, "job_id": m.job_id,
               "created_by": m.created_by, "path": m.path,
               "created_at": m.created_at.isoformat() if m.created_at else None,
               "images": {k: len(v) for k, v in (m.image_ids or {}).items()}}
        if ids:
            out["image_ids"] = m.image_ids
        return out

    def models(self, project_id: int) -> list[dict]:
        """The project's trained models, newest version first."""
        with self.Session() as s:
            self._get(s, db.Project, project_id)
            return [self._model(m) for m in s.scalars(select(db.TrainedModel).where(
                db.TrainedModel.project_id == project_id).order_by(
                db.TrainedModel.version.desc()))]

    def model(self, model_id: int, *, ids: bool = False) -> dict:
        with self.Session() as s:
            return self._model(self._get(s, db.TrainedModel, model_id), ids=ids)

    def set_uncertainty(self, s, image_id: int, value: float | None) -> None:
        """An image's uncertainty (0..1), and its queue priority until the job orders its
        images (``set_priorities``), in the caller's transaction."""
        v = None if value is None else float(value)
        s.execute(update(db.Image).where(db.Image.id == image_id).values(
            uncertainty=v, priority=v))

    def set_priorities(self, s, values: dict[int, float]) -> None:
        """Images' places in the "least confident first" queue (larger: sooner), in the
        caller's transaction."""
        if values:
            s.execute(update(db.Image), [{"id": int(i), "priority": float(p)}
                                         for i, p in values.items()])

    def set_settings(self, project_id: int, settings: dict) -> dict:
        """Update the project's settings (``order``: one of ``ORDERS``)."""
        settings = dict(settings)
        if "order" in settings and settings["order"] not in ORDERS:
            raise InputError(f"order must be one of {', '.join(ORDERS)}")
        unknown = set(settings) - {"order"}
        if unknown:
            raise InputError(f"unknown setting {sorted(unknown)[0]!r}")
        with self.transaction() as s:
            p = self._get(s, db.Project, project_id)
            p.settings = {**(p.settings or {}), **settings}
            return self._project(s, p, counts=False)
