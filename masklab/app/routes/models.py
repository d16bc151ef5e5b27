"""The models: the segmenter's state, embeddings, prompts (clicks, boxes, scribbles, masks),
segment-everything, text prompts, video tracking."""

from __future__ import annotations

import threading
import time

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse

from masklab.app.routes import Ctx
from masklab.app.schemas import Id, SegmentIn, TextIn, TrackIn
from masklab.app.store import NotFound
from masklab.errors import InputError


def register(app: FastAPI, ctx: Ctx) -> None:
    store, seg, cfg, who = ctx.store, ctx.seg, ctx.cfg, ctx.who
    r = APIRouter()

    @r.get("/api/segmenter")
    def segmenter_status():
        """What answers the clicks now, and SAM's loading (``state``: idle, loading, ready,
        failed; ``message``: a line for the editor; ``bytes`` while downloading)."""
        return seg.status()

    @r.get("/api/decoder")
    def decoder(multimask: bool = False):
        """The browser's prompt decoder for the model answering now: its family, frame and
        the URL of its ONNX file (``available`` false with ``reason`` where clicks must be
        decoded on the server)."""
        info = dict(seg.browser_decoder(multimask))
        if info.pop("path", None) is not None:
            key = info["key"]
            info["url"] = f"/api/decoder/{key}.onnx"  # a prompt's masks
            info["image_url"] = f"/api/decoder/{key}.image.onnx"  # once per image
            info["mask_url"] = f"/api/decoder/{key}.mask.onnx"  # a prompt with a mask
        return info

    @r.get("/api/decoder/{key}.onnx")
    def decoder_file(key: str):
        path = seg.decoder_path(key)
        if path is None:
            raise NotFound(f"decoder {key!r} does not exist")
        return FileResponse(path, media_type="application/octet-stream",
                            headers={"Cache-Control": "private, max-age=31536000, immutable"})

    @r.get("/api/images/{image_id}/embedding")
    def embedding(image_id: Id):
        """The image's embedding, fp16, as the safetensors bytes (``X-Model`` names the model
        it belongs to; the browser decodes clicks on it)."""
        img = store.image(image_id)
        got = seg.embedding_file(img["sha256"], store.image_path(image_id))
        if got is None:
            raise InputError(f"{seg.current_name} has no image embedding")
        path, model = got
        ctx.prefetch(image_id, include_self=False)
        return FileResponse(path, media_type="application/octet-stream",
                            headers={"Cache-Control": "private, max-age=3600",
                                     "X-Model": model})

    @r.post("/api/images/{image_id}/embed")
    def embed(image_id: Id):
        """Compute (or load) the image's embedding now; the next images follow in the
        background."""
        img = store.image(image_id)
        t = time.perf_counter()
        seg.state(img["sha256"], store.image_path(image_id))
        ctx.prefetch(image_id, include_self=False)
        return {"seconds": round(time.perf_counter() - t, 4), "backend": seg.current_name}

    @r.post("/api/images/{image_id}/segment")
    def segment(image_id: Id, body: SegmentIn):
        from masklab import rle as _rle

        img = store.image(image_id)
        t = time.perf_counter()
        mask = None
        if body.mask is not None:
            from masklab.app.store import mask_fields

            counts, _, _ = mask_fields(body.mask.model_dump(), img["height"], img["width"])
            mask = _rle.decode([{"size": [img["height"], img["width"]], "counts": counts}])[0]
        masks = seg.segment(img["sha256"], store.image_path(image_id), points=body.points,
                            labels=body.labels, box=body.box, mask=mask,
                            scribbles=[s.model_dump() for s in body.scribbles],
                            multimask=body.multimask)
        out = [{"mask": r, "score": float(s)} for r, s in zip(masks.to_rle(), masks.scores,
                                                             strict=True)]
        return {"masks": out, "ms": round(1000 * (time.perf_counter() - t), 2),
                "backend": seg.current_name}

    @r.post("/api/images/{image_id}/everything")
    def everything(image_id: Id):
        img = store.image(image_id)
        masks = seg.everything(img["sha256"], store.image_path(image_id))
        return {"proposals": [{"mask": r, "score": float(s)} for r, s in
                              zip(masks.to_rle(), masks.scores, strict=True)]}

    @r.post("/api/images/{image_id}/text")
    def text(image_id: Id, body: TextIn):
        """Text prompts → proposals (boxes from the detector, masks from SAM or GrabCut),
        each with the project class of the same name (``class_id`` null when none)."""
        img = store.image(image_id)
        classes = store.project(img["project_id"], counts=False)["classes"]
        names = [t.strip() for t in body.text.split(",") if t.strip()] or \
            [c["name"] for c in classes]
        by_name = {c["name"].lower(): c["id"] for c in classes}
        det, masks, scores = seg.text(img["sha256"], store.image_path(image_id), names,
                                      threshold=body.threshold, limit=body.limit)
        from masklab import rle as _rle

        out = []
        for k, (r, sc) in enumerate(zip(_rle.encode(masks), scores, strict=True)):
            name = det.classes[int(det.labels[k])]
            out.append({"mask": r, "score": float(det.scores[k]), "mask_score": float(sc),
                        "label": name, "class_id": by_name.get(name.lower()),
                        "box": [round(float(v), 2) for v in det.boxes[k]]})
        return {"proposals": out, "detector": seg.detector_name}

    video = {"backend": None, "lock": threading.Lock()}

    @r.post("/api/annotations/{annotation_id}/track")
    def track(annotation_id: Id, body: TrackIn, p=Depends(who)):
        """Track the object through its video from this frame (``--video-backend``: flow, or
        SAM 2.1 / EdgeTAM); it stops at a frame the annotators corrected."""
        from masklab.video.session import make_video_backend

        with video["lock"]:
            if video["backend"] is None:
                video["backend"] = make_video_backend(cfg.video_backend)
            b = video["backend"]
            if hasattr(b, "forget"):
                b.forget()
            t = time.perf_counter()
            out = store.track(annotation_id, b, direction=body.direction,
                              frames=body.frames, user=p.name)
        out["seconds"] = round(time.perf_counter() - t, 3)
        return out

    app.include_router(r)
