"""Projects: create, classes and attributes, the image list, import, upload, export."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, File, Query, UploadFile
from fastapi.responses import FileResponse

from masklab.app.routes import Ctx, image_filter
from masklab.app.schemas import AttributesIn, ClassesIn, CocoIn, ExportIn, FolderIn, Id, ProjectIn
from masklab.app.store import NotFound


def register(app: FastAPI, ctx: Ctx) -> None:
    store, cfg, admin, _err = ctx.store, ctx.cfg, ctx.admin, ctx.err
    r = APIRouter()

    def _classes(items) -> list:
        return [c if isinstance(c, str) else c.model_dump(exclude_none=True) for c in items]

    @r.get("/api/projects")
    def projects():
        return store.projects()

    @r.post("/api/projects")
    def create_project(body: ProjectIn, _p=Depends(admin)):
        return store.create_project(body.name, _classes(body.classes),
                                    [a.model_dump(exclude_none=True) for a in body.attributes])

    @r.get("/api/projects/{project_id}")
    def project(project_id: Id, counts: bool = True):
        """The project; ``counts=false`` leaves out the per-status counts (no scan)."""
        return store.project(project_id, counts=counts)

    @r.put("/api/projects/{project_id}/classes")
    def set_classes(project_id: Id, body: ClassesIn, _p=Depends(admin)):
        return store.set_classes(project_id, _classes(body.classes))

    @r.put("/api/projects/{project_id}/attributes")
    def set_attributes(project_id: Id, body: AttributesIn, _p=Depends(admin)):
        return store.set_attributes(project_id, [a.model_dump(exclude_none=True)
                                                 for a in body.attributes])

    @r.get("/api/projects/{project_id}/images")
    def images(project_id: Id, flt=Depends(image_filter), offset: int = Query(0, ge=0),
               limit: int = Query(100, ge=1, le=500)):
        """One page of the image list: filtered (``status``, ``assignee``, ``annotated``,
        ``proposals``, ``q``: name contains), sorted (``sort``), ``{items, total, offset,
        limit, frames}``."""
        return store.images(project_id, flt, offset=offset, limit=limit)

    @r.post("/api/projects/{project_id}/import")
    def import_folder(project_id: Id, body: FolderIn, _p=Depends(admin)):
        added = store.import_folder(project_id, body.folder, recursive=body.recursive)
        return {"added": len(added), "images": added}

    @r.post("/api/projects/{project_id}/import-coco")
    def import_coco(project_id: Id, body: CocoIn, p=Depends(admin)):
        return store.import_coco(project_id, body.coco, images_dir=body.images_dir,
                                 fmt=body.format, user=p.name)

    @r.post("/api/projects/{project_id}/upload")
    async def upload(project_id: Id, files: list[UploadFile] = File(...), _p=Depends(admin)):
        out = []
        for f in files:
            data = await f.read(cfg.max_upload_bytes + 1)
            if len(data) > cfg.max_upload_bytes:
                return _err(413, f"{f.filename}: over the upload limit of "
                                 f"{cfg.max_upload_bytes} bytes")
            out += store.upload(project_id, f.filename or "", data,
                                max_bytes=cfg.max_upload_bytes, max_pixels=cfg.max_pixels)
        return {"added": len(out), "images": out}

    @r.post("/api/projects/{project_id}/export")
    def export(project_id: Id, body: ExportIn):
        path = store.export(project_id, body.format, proposals=body.proposals)
        if path.is_dir():
            path = zip_folder(path)
        return {"file": path.name, "url": f"/api/exports/{path.name}"}

    @r.get("/api/exports/{name}")
    def download(name: str):
        path = (store.exports / name).resolve()
        if path.parent != store.exports.resolve() or not path.is_file():
            raise NotFound(f"export {name!r} does not exist")
        return FileResponse(path, filename=name)

    app.include_router(r)

def zip_folder(folder: Path) -> Path:
    """``folder`` as ``folder.zip`` beside it (written whole, then renamed)."""
    import shutil

    from masklab.io.atomic import atomic_path

    dest = folder.with_suffix(".zip")
    with atomic_path(dest) as tmp:
        shutil.make_archive(str(tmp.with_suffix("")), "zip", folder)
        os.replace(str(tmp.with_suffix("")) + ".zip", tmp)
    return dest
