"""Annotations: create, change, delete, polygons; alpha mattes and cut-outs."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import FileResponse

from masklab.app.routes import Ctx
from masklab.app.schemas import AnnotationIn, AnnotationPatch, Id, Int64, MatteIn, ReviewIn
from masklab.app.store import NotFound
from masklab.errors import InputError


def register(app: FastAPI, ctx: Ctx) -> None:
    store, who = ctx.store, ctx.who
    r = APIRouter()

    @r.post("/api/images/{image_id}/annotations")
    def create_annotation(image_id: Id, body: AnnotationIn, p=Depends(who)):
        return store.create_annotation(image_id, class_id=body.class_id,
                                       mask=body.mask.model_dump(), source=body.source,
                                       score=body.score, version=body.version,
                                       track_id=body.track_id, attributes=body.attributes,
                                       proposal=body.proposal,
                                       user=p.name)

    @r.patch("/api/annotations/{annotation_id}")
    def update_annotation(annotation_id: Id, body: AnnotationPatch, p=Depends(who)):
        fields = body.model_dump(exclude_none=True, exclude={"version"})
        if body.mask is not None:
            fields["mask"] = body.mask.model_dump()
        return store.update_annotation(annotation_id, version=body.version, user=p.name,
                                       **fields)

    @r.delete("/api/annotations/{annotation_id}")
    def delete_annotation(annotation_id: Id, version: Int64 | None = None, p=Depends(who)):
        return store.delete_annotation(annotation_id, version=version, user=p.name)

    @r.get("/api/annotations/{annotation_id}/polygons")
    def polygons(annotation_id: Id, detail: float = 1.0):
        """The mask as polygons (outer rings and holes), simplified to ``detail`` pixels."""
        return {"polygons": store.polygons(annotation_id, detail)}

    @r.post("/api/annotations/{annotation_id}/matte")
    def matte(annotation_id: Id, body: MatteIn):
        """Alpha matte of the object: trimap from its mask (``band`` px each side) with the
        trimap-brush strokes, closed-form solve; saved as an 8-bit alpha PNG."""
        from masklab.app.matte import matte_annotation, write_alpha
        from masklab.io.images import read_image

        mask, path = store.annotation_mask(annotation_id)
        t = time.perf_counter()
        alpha = matte_annotation(read_image(path), mask, band=body.band,
                                 strokes=[s.model_dump() for s in body.strokes])
        write_alpha(store.alpha_path(annotation_id), alpha)
        return {"url": f"/api/annotations/{annotation_id}/alpha",
                "cutout": f"/api/annotations/{annotation_id}/cutout",
                "seconds": round(time.perf_counter() - t, 3),
                "partial_pixels": int(((alpha > 0) & (alpha < 255)).sum())}

    def _alpha_file(annotation_id: Id) -> Path:
        store.annotation_mask(annotation_id)  # 404 for an unknown annotation
        p = store.alpha_path(annotation_id)
        if not p.is_file():
            raise NotFound(f"annotation {annotation_id} has no alpha matte yet")
        return p

    @r.get("/api/annotations/{annotation_id}/alpha")
    def alpha(annotation_id: Id):
        return FileResponse(_alpha_file(annotation_id), media_type="image/png",
                            headers={"Cache-Control": "no-cache"})

    @r.get("/api/annotations/{annotation_id}/cutout")
    def cutout(annotation_id: Id):
        """The object as an RGBA PNG (the image's colours, the matte's alpha), cropped."""
        import io

        import numpy as np
        from PIL import Image as PILImage

        from masklab.io.images import read_image, read_label_png

        a = read_label_png(_alpha_file(annotation_id)).astype(np.uint8)
        _, path = store.annotation_mask(annotation_id)
        rgb = read_image(path)
        ys, xs = np.nonzero(a)
        if len(ys) == 0:
            raise InputError("the matte is empty")
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rgba = np.dstack([rgb[y0:y1, x0:x1], a[y0:y1, x0:x1]])
        buf = io.BytesIO()
        PILImage.fromarray(rgba, "RGBA").save(buf, "PNG")
        return Response(buf.getvalue(), media_type="image/png",
                        headers={"Cache-Control": "no-cache"})

    @r.post("/api/projects/{project_id}/proposals")
    def review(project_id: Id, body: ReviewIn, p=Depends(who)):
        """Accept or reject proposals in bulk: all, of a class, above a score
        (``min_score``), of one image, or the given ids."""
        return store.review_proposals(project_id, body.action, class_id=body.class_id,
                                      min_score=body.min_score, max_score=body.max_score,
                                      image_id=body.image_id,
                                      annotation_ids=body.annotation_ids, user=p.name)

    app.include_router(r)
