"""One image: its record and file, its annotations, video frames, review status, assignee,
history, undo and redo."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import FileResponse

from masklab.app.routes import Ctx, image_filter
from masklab.app.schemas import AssignIn, Id, StatusIn, VersionIn


def register(app: FastAPI, ctx: Ctx) -> None:
    store, who, admin = ctx.store, ctx.who, ctx.admin
    r = APIRouter()

    @r.get("/api/images/{image_id}")
    def image(image_id: Id):
        return store.image(image_id)

    @r.get("/api/images/{image_id}/neighbour")
    def neighbour(image_id: Id, step: int = Query(1, ge=-1000, le=1000),
                  flt=Depends(image_filter)):
        """The image ``step`` places away in the list under the same filter as the project
        page's (``{"image": null}`` past either end)."""
        if step == 0:
            return {"image": store.image(image_id)}
        return {"image": store.neighbour(image_id, step, flt)}

    @r.get("/api/images/{image_id}/file")
    def image_file(image_id: Id):
        return FileResponse(store.image_path(image_id),
                            headers={"Cache-Control": "private, max-age=3600"})

    @r.get("/api/images/{image_id}/annotations")
    def annotations(image_id: Id):
        out = store.annotations(image_id)
        ctx.prefetch(image_id, include_self=True)
        return out

    @r.get("/api/images/{image_id}/frames")
    def frames(image_id: Id):
        """The frames of the image's video in order (empty for a still image)."""
        return store.frames(image_id)

    @r.put("/api/images/{image_id}/status")
    def status(image_id: Id, body: StatusIn, p=Depends(who)):
        return store.set_status(image_id, body.status, body.comment, role=p.role)

    @r.put("/api/images/{image_id}/assignee")
    def assign(image_id: Id, body: AssignIn, _p=Depends(admin)):
        return store.assign(image_id, body.user_id)

    @r.get("/api/images/{image_id}/history")
    def history(image_id: Id):
        return store.history(image_id)

    @r.post("/api/images/{image_id}/undo")
    def undo(image_id: Id, body: VersionIn, p=Depends(who)):
        return store.undo(image_id, version=body.version, user=p.name)

    @r.post("/api/images/{image_id}/redo")
    def redo(image_id: Id, body: VersionIn, p=Depends(who)):
        return store.redo(image_id, version=body.version, user=p.name)

    app.include_router(r)
