"""Background jobs: start one (import, COCO import, export, pre-labelling, tracking), follow
its progress, cancel it, download what it made."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query

from masklab.app.routes import Ctx
from masklab.app.schemas import Id, JobIn
from masklab.errors import InputError

ADMIN_KINDS = ("import", "import-coco", "prelabel", "train")


def register(app: FastAPI, ctx: Ctx) -> None:
    store, who = ctx.store, ctx.who
    r = APIRouter()

    @r.post("/api/projects/{project_id}/jobs")
    def start_job(project_id: Id, body: JobIn, p=Depends(who)):
        """Queue a job; it runs in the background (``GET /api/jobs/{id}`` for progress)."""
        from masklab.app import db

        if body.kind not in db.JOB_KINDS:
            raise InputError(f"job kind must be one of {', '.join(db.JOB_KINDS)}")
        if body.kind in ADMIN_KINDS and p.role != "admin":
            from masklab.app.store import Forbidden

            raise Forbidden(f"only an admin may start a {body.kind} job")
        project = store.project(project_id, counts=False)
        params, ids = dict(body.params), None
        if body.kind == "import":
            if not params.get("folder"):
                raise InputError("an import job needs params.folder")
            store.confine(params["folder"])
        elif body.kind == "import-coco":
            from masklab.app.store.base import IMPORT_FORMATS

            if not params.get("coco"):
                raise InputError("an annotation import job needs params.coco (the file or "
                                 "folder)")
            if params.get("format", "coco") not in IMPORT_FORMATS:
                raise InputError(f"format must be one of {', '.join(IMPORT_FORMATS)}")
            store.confine(params["coco"])
        elif body.kind == "export":
            from masklab.app.store import EXPORT_FORMATS

            if params.get("format", "coco") not in EXPORT_FORMATS:
                raise InputError(f"format must be one of {', '.join(EXPORT_FORMATS)}")
        elif body.kind == "track":
            store.annotation_mask(int(params.get("annotation_id") or 0))  # 404 if unknown
        elif body.kind == "prelabel":
            from masklab.app.prelabel import check_params
            from masklab.app.routes import filter_from

            params = check_params(params, project, store)
            ids = store.image_ids(project_id, filter_from(body.filter or {}, p,
                                                          frames="all"))
            if not ids:
                raise InputError("no image matches the filter")
        elif body.kind == "train":
            from masklab.app import training
            from masklab.app.routes import filter_from

            params = training.check_params(params, project)
            training.check_base(params, project, store)
            ids = training.labelled_ids(store, project_id, params["statuses"],
                                        filter_from(body.filter or {}, p, frames="all"))
            training.split(ids, params["seed"], params["val_percent"])  # enough images?
        job = store.create_job(project_id, body.kind, params, user=p.name, image_ids=ids)
        if ctx.jobs is not None:
            ctx.jobs.wake()
        return job

    @r.get("/api/projects/{project_id}/jobs")
    def project_jobs(project_id: Id, limit: int = Query(20, ge=1, le=500)):
        store.project(project_id, counts=False)  # 404 for an unknown project
        return store.jobs(project_id, limit=limit)

    @r.get("/api/jobs/{job_id}")
    def job(job_id: Id):
        """State, done / total, rate (items/s), ETA (s), errors (one line each), result."""
        return store.job(job_id)

    @r.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: Id, _p=Depends(who)):
        return store.cancel_job(job_id)

    app.include_router(r)
