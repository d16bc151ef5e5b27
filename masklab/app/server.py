"""The app's HTTP API (FastAPI) and its static front end.

    app = create_app("data/")                 # SQLite in data/masklab.db, GrabCut or SAM
    uvicorn.run(app, host="127.0.0.1", port=8000)

Errors are JSON ``{"detail": "..."}``: 400 bad input, 401 not logged in, 403 not allowed or
outside the import roots, 404 unknown id, 409 stale version (reload and retry), 413 upload too
large, 429 too many wrong passwords (with ``Retry-After``); never a 500 for malformed input.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Request, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from masklab.app import auth as _auth
from masklab.app import db
from masklab.app.store import EXPORT_FORMATS, Forbidden, NotFound, StaleVersion, Store
from masklab.errors import InputError, MasklabError

_log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# --- request bodies ------------------------------------------------------------------------
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what a database integer holds
Id = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
class ClassIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    color: str | None = None
    id: Int64 | None = None


class AttributeIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = "text"
    values: list[str] | None = None


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    classes: list[ClassIn | str] = Field(default_factory=list)
    attributes: list[AttributeIn] = Field(default_factory=list)


class AttributesIn(BaseModel):
    attributes: list[AttributeIn]


class ClassesIn(BaseModel):
    classes: list[ClassIn | str]


class FolderIn(BaseModel):
    folder: str
    recursive: bool = True


class CocoIn(BaseModel):
    coco: str
    images_dir: str | None = None


class Rle(BaseModel):
    size: list[int]
    counts: str | list[int]


class AnnotationIn(BaseModel):
    class_id: Int64
    mask: Rle
    source: str = "hand"
    score: float | None = None
    version: Int64 | None = None
    track_id: Int64 | None = None
    attributes: dict[str, Any] | None = None


class AnnotationPatch(BaseModel):
    version: Int64 | None = None
    class_id: Int64 | None = None
    mask: Rle | None = None
    visible: bool | None = None
    z: Int64 | None = None
    source: str | None = None
    attributes: dict[str, Any] | None = None


class VersionIn(BaseModel):
    version: Int64 | None = None


class StatusIn(BaseModel):
    status: str
    comment: str = ""


class AssignIn(BaseModel):
    user_id: Int64 | None = None


class ScribbleIn(BaseModel):
    points: list[list[float]]
    width: float = 5.0
    positive: bool = True


class SegmentIn(BaseModel):
    points: list[list[float]] = Field(default_factory=list)
    labels: list[int] = Field(default_factory=list)
    box: list[float] | None = None
    mask: Rle | None = None  # refine: the current mask as a prompt
    scribbles: list[ScribbleIn] = Field(default_factory=list)
    multimask: bool = False


class TextIn(BaseModel):
    text: str = ""  # "cat, dog"; empty: the project's classes
    threshold: float | None = None
    limit: int = Field(default=50, ge=1, le=500)


class StrokeIn(BaseModel):
    points: list[list[float]]
    width: float = 10.0
    kind: str = "unknown"


class MatteIn(BaseModel):
    band: int = 8
    strokes: list[StrokeIn] = Field(default_factory=list)


class TrackIn(BaseModel):
    direction: str = "forward"
    frames: int = Field(default=50, ge=1, le=5000)


class ExportIn(BaseModel):
    format: str = "coco"


class LoginIn(BaseModel):
    name: str
    password: str


class UserIn(BaseModel):
    name: str
    password: str
    role: str


# --- the app -------------------------------------------------------------------------------
class AppConfig:
    def __init__(self, data_dir, *, db_url: str | None = None, backend: str = "auto",
                 roots=None, auth: bool = False, device: str = "cpu",
                 max_upload_bytes: int = 64 << 20, max_pixels: int = 100_000_000,
                 prefetch: int = 2, detector: str = "grounding-dino-tiny",
                 video_backend: str = "flow"):
        self.data_dir = Path(data_dir).resolve()
        self.db_url = db_url or db.sqlite_url(self.data_dir / "masklab.db")
        self.backend, self.device = backend, device
        self.roots = [Path(r).resolve() for r in (roots if roots is not None
                                                  else [self.data_dir])]
        self.auth, self.max_upload_bytes, self.max_pixels = auth, max_upload_bytes, max_pixels
        self.prefetch, self.detector, self.video_backend = prefetch, detector, video_backend


def create_app(data_dir=None, *, config: AppConfig | None = None, **kwargs) -> FastAPI:
    """The FastAPI app over a data folder (created if needed; the schema is migrated)."""
    from masklab import __version__
    from masklab.app.segment import Segmenter

    cfg = config or AppConfig(data_dir, **kwargs)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(cfg.db_url)
    db.migrate(engine)
    store = Store(engine, cfg.data_dir, cfg.roots)
    seg = Segmenter(cfg.backend, device=cfg.device, cache_dir=cfg.data_dir / "cache" /
                    "embeddings", detector=cfg.detector)
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        seg.start()  # with --backend auto, SAM loads (or downloads) in the background now
        yield
        seg.close()
        engine.dispose()

    app = FastAPI(title="masklab", version=__version__, lifespan=lifespan,
                  description="masklab's annotation app: projects, images, mask-native "
                              "annotations, SAM prompts, review, export.")
    app.state.store, app.state.segmenter, app.state.config = store, seg, cfg

    # --- errors: one clear line, the right status, never a 500 for bad input ----------------
    def _err(status: int, msg: str, **extra) -> JSONResponse:
        return JSONResponse({"detail": msg, **extra}, status_code=status)

    @app.exception_handler(StaleVersion)
    async def _stale(_r, e: StaleVersion):
        return _err(409, str(e), version=e.version)

    @app.exception_handler(NotFound)
    async def _nf(_r, e):
        return _err(404, str(e))

    @app.exception_handler(Forbidden)
    async def _fb(_r, e):
        return _err(403, str(e))

    @app.exception_handler(MasklabError)
    async def _bad(_r, e):
        return _err(400, str(e))

    @app.exception_handler(ValueError)
    async def _val(_r, e):
        return _err(400, str(e))

    @app.exception_handler(OverflowError)
    async def _ovf(_r, e):
        return _err(400, f"a number is out of range ({e})")

    @app.exception_handler(RequestValidationError)
    async def _rv(_r, e: RequestValidationError):
        errs = e.errors()
        first = errs[0] if errs else {}
        if first.get("type") == "json_invalid":
            return _err(422, f"malformed JSON body: {first.get('ctx', {}).get('error', '')}"
                        .rstrip(": "))
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _err(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    # --- who is asking, and CSRF ---------------------------------------------------------
    @app.middleware("http")
    async def _security(request: Request, call_next):
        path = request.url.path
        p = None
        if cfg.auth:
            p = _auth.principal(store, request.cookies.get(_auth.SESSION_COOKIE))
        else:
            p = _auth.Principal("local", "admin", None, None)
        request.state.principal = p
        request.state.new_csrf = None
        if not cfg.auth and _auth.CSRF_COOKIE not in request.cookies:
            import secrets

            request.state.new_csrf = secrets.token_urlsafe(32)
        if request.method not in SAFE_METHODS and path.startswith("/api/") \
                and path != "/api/login":
            expected = p.csrf if (cfg.auth and p) else request.cookies.get(_auth.CSRF_COOKIE)
            if not _auth.csrf_ok(expected, request.headers.get(_auth.CSRF_HEADER)):
                return _err(403, "missing or wrong CSRF token (send the X-CSRF-Token header)")
        if cfg.auth and p is None and path.startswith("/api/") and path not in (
                "/api/login", "/api/session", "/api/info"):
            return _err(401, "log in first")
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if path in ("/docs", "/redoc"):  # FastAPI's API explorer loads its assets online
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self' 'unsafe-inline' cdn.jsdelivr.net; "
                "style-src 'self' cdn.jsdelivr.net; img-src 'self' data: fastapi.tiangolo.com;"
                " frame-ancestors 'none'")
        else:
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        response.headers["Referrer-Policy"] = "same-origin"
        if request.state.new_csrf:
            response.set_cookie(_auth.CSRF_COOKIE, request.state.new_csrf, samesite="strict",
                                httponly=False)
        return response

    def who(request: Request) -> _auth.Principal:
        return request.state.principal

    def admin(request: Request) -> _auth.Principal:
        p = request.state.principal
        if p.role != "admin":
            raise Forbidden("only an admin may do this")
        return p

    # --- session / info ------------------------------------------------------------------
    @app.get("/api/info")
    def info():
        return {"version": __version__, "auth": cfg.auth, "export_formats": EXPORT_FORMATS,
                "statuses": db.STATUSES, "roles": db.ROLES,
                "backend": cfg.backend if seg._backend is None else seg.name}

    @app.get("/api/segmenter")
    def segmenter_status():
        """What answers the clicks now, and SAM's loading (``state``: idle, loading, ready,
        failed; ``message``: a line for the editor; ``bytes`` while downloading)."""
        return seg.status()

    @app.get("/api/session")
    def session(request: Request):
        p = request.state.principal
        if p is None:
            return {"user": None, "auth": cfg.auth}
        csrf = p.csrf if cfg.auth else (request.cookies.get(_auth.CSRF_COOKIE)
                                        or request.state.new_csrf)
        return {"user": p.name, "role": p.role, "csrf": csrf, "auth": cfg.auth}

    throttle = app.state.login_throttle = _auth.LoginThrottle()

    def _too_many(wait: float) -> JSONResponse:
        seconds = max(1, math.ceil(wait))
        r = _err(429, f"too many wrong passwords: try again in {seconds} s")
        r.headers["Retry-After"] = str(seconds)
        return r

    @app.post("/api/login")
    def login(body: LoginIn, request: Request, response: Response):
        if not cfg.auth:
            raise InputError("this server has no accounts (it runs on 127.0.0.1)")
        address = request.client.host if request.client else None
        wait = throttle.retry_after(body.name, address)
        if wait > 0:  # no password is checked while locked
            return _too_many(wait)
        got = _auth.login(store, body.name, body.password)
        if got is None:
            wait = throttle.failed(body.name, address)
            return _too_many(wait) if wait > 0 else _err(401, "wrong user name or password")
        throttle.succeeded(body.name, address)
        token, p = got
        response.set_cookie(_auth.SESSION_COOKIE, token, httponly=True, samesite="strict",
                            max_age=_auth.SESSION_DAYS * 86400)
        response.set_cookie(_auth.CSRF_COOKIE, p.csrf, httponly=False, samesite="strict")
        return {"user": p.name, "role": p.role, "csrf": p.csrf}

    @app.post("/api/logout")
    def logout(request: Request, response: Response):
        token = request.cookies.get(_auth.SESSION_COOKIE)
        if token:
            _auth.logout(store, token)
        response.delete_cookie(_auth.SESSION_COOKIE)
        return {"ok": True}

    @app.get("/api/users")
    def list_users(_p=Depends(admin)):
        return _auth.users(store)

    @app.post("/api/users")
    def create_user(body: UserIn, _p=Depends(admin)):
        return _auth.add_user(store, body.name, body.password, body.role)

    # --- projects ------------------------------------------------------------------------
    def _classes(items) -> list:
        return [c if isinstance(c, str) else c.model_dump(exclude_none=True) for c in items]

    @app.get("/api/projects")
    def projects():
        return store.projects()

    @app.post("/api/projects")
    def create_project(body: ProjectIn, _p=Depends(admin)):
        return store.create_project(body.name, _classes(body.classes),
                                    [a.model_dump(exclude_none=True) for a in body.attributes])

    @app.get("/api/projects/{project_id}")
    def project(project_id: Id):
        return store.project(project_id)

    @app.put("/api/projects/{project_id}/classes")
    def set_classes(project_id: Id, body: ClassesIn, _p=Depends(admin)):
        return store.set_classes(project_id, _classes(body.classes))

    @app.put("/api/projects/{project_id}/attributes")
    def set_attributes(project_id: Id, body: AttributesIn, _p=Depends(admin)):
        return store.set_attributes(project_id, [a.model_dump(exclude_none=True)
                                                 for a in body.attributes])

    @app.get("/api/projects/{project_id}/images")
    def images(project_id: Id):
        return store.images(project_id)

    @app.post("/api/projects/{project_id}/import")
    def import_folder(project_id: Id, body: FolderIn, _p=Depends(admin)):
        added = store.import_folder(project_id, body.folder, recursive=body.recursive)
        return {"added": len(added), "images": added}

    @app.post("/api/projects/{project_id}/import-coco")
    def import_coco(project_id: Id, body: CocoIn, p=Depends(admin)):
        return store.import_coco(project_id, body.coco, images_dir=body.images_dir,
                                 user=p.name)

    @app.post("/api/projects/{project_id}/upload")
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

    @app.post("/api/projects/{project_id}/export")
    def export(project_id: Id, body: ExportIn):
        path = store.export(project_id, body.format)
        if path.is_dir():
            path = _zip(path)
        return {"file": path.name, "url": f"/api/exports/{path.name}"}

    @app.get("/api/exports/{name}")
    def download(name: str):
        path = (store.exports / name).resolve()
        if path.parent != store.exports.resolve() or not path.is_file():
            raise NotFound(f"export {name!r} does not exist")
        return FileResponse(path, filename=name)

    # --- images --------------------------------------------------------------------------
    def _prefetch(image_id: Id, include_self: bool) -> None:
        ids = ([image_id] if include_self else []) + store.neighbours(image_id, cfg.prefetch)
        seg.prefetch([(store.image(i)["sha256"], store.image_path(i)) for i in ids])

    @app.get("/api/images/{image_id}")
    def image(image_id: Id):
        return store.image(image_id)

    @app.get("/api/images/{image_id}/file")
    def image_file(image_id: Id):
        return FileResponse(store.image_path(image_id),
                            headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/images/{image_id}/annotations")
    def annotations(image_id: Id):
        out = store.annotations(image_id)
        _prefetch(image_id, include_self=True)
        return out

    @app.post("/api/images/{image_id}/embed")
    def embed(image_id: Id):
        """Compute (or load) the image's embedding now; the next images follow in the
        background."""
        img = store.image(image_id)
        t = time.perf_counter()
        seg.state(img["sha256"], store.image_path(image_id))
        _prefetch(image_id, include_self=False)
        return {"seconds": round(time.perf_counter() - t, 4), "backend": seg.current_name}

    @app.post("/api/images/{image_id}/segment")
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

    @app.post("/api/images/{image_id}/everything")
    def everything(image_id: Id):
        img = store.image(image_id)
        masks = seg.everything(img["sha256"], store.image_path(image_id))
        return {"proposals": [{"mask": r, "score": float(s)} for r, s in
                              zip(masks.to_rle(), masks.scores, strict=True)]}

    @app.post("/api/images/{image_id}/text")
    def text(image_id: Id, body: TextIn):
        """Text prompts → proposals (boxes from the detector, masks from SAM or GrabCut),
        each with the project class of the same name (``class_id`` null when none)."""
        img = store.image(image_id)
        classes = store.project(img["project_id"])["classes"]
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

    @app.post("/api/annotations/{annotation_id}/matte")
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

    @app.get("/api/annotations/{annotation_id}/alpha")
    def alpha(annotation_id: Id):
        return FileResponse(_alpha_file(annotation_id), media_type="image/png",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/api/annotations/{annotation_id}/cutout")
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

    @app.get("/api/images/{image_id}/frames")
    def frames(image_id: Id):
        """The frames of the image's video in order (empty for a still image)."""
        return store.frames(image_id)

    import threading

    video = {"backend": None, "lock": threading.Lock()}

    @app.post("/api/annotations/{annotation_id}/track")
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

    @app.put("/api/images/{image_id}/status")
    def status(image_id: Id, body: StatusIn, p=Depends(who)):
        return store.set_status(image_id, body.status, body.comment, role=p.role)

    @app.put("/api/images/{image_id}/assignee")
    def assign(image_id: Id, body: AssignIn, _p=Depends(admin)):
        return store.assign(image_id, body.user_id)

    @app.get("/api/images/{image_id}/history")
    def history(image_id: Id):
        return store.history(image_id)

    @app.post("/api/images/{image_id}/undo")
    def undo(image_id: Id, body: VersionIn, p=Depends(who)):
        return store.undo(image_id, version=body.version, user=p.name)

    @app.post("/api/images/{image_id}/redo")
    def redo(image_id: Id, body: VersionIn, p=Depends(who)):
        return store.redo(image_id, version=body.version, user=p.name)

    # --- annotations ---------------------------------------------------------------------
    @app.post("/api/images/{image_id}/annotations")
    def create_annotation(image_id: Id, body: AnnotationIn, p=Depends(who)):
        return store.create_annotation(image_id, class_id=body.class_id,
                                       mask=body.mask.model_dump(), source=body.source,
                                       score=body.score, version=body.version,
                                       track_id=body.track_id, attributes=body.attributes,
                                       user=p.name)

    @app.patch("/api/annotations/{annotation_id}")
    def update_annotation(annotation_id: Id, body: AnnotationPatch, p=Depends(who)):
        fields = body.model_dump(exclude_none=True, exclude={"version"})
        if body.mask is not None:
            fields["mask"] = body.mask.model_dump()
        return store.update_annotation(annotation_id, version=body.version, user=p.name,
                                       **fields)

    @app.delete("/api/annotations/{annotation_id}")
    def delete_annotation(annotation_id: Id, version: Int64 | None = None, p=Depends(who)):
        return store.delete_annotation(annotation_id, version=version, user=p.name)

    @app.get("/api/annotations/{annotation_id}/polygons")
    def polygons(annotation_id: Id, detail: float = 1.0):
        """The mask as polygons (outer rings and holes), simplified to ``detail`` pixels."""
        return {"polygons": store.polygons(annotation_id, detail)}

    # --- the front end -------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app


def _zip(folder: Path) -> Path:
    import shutil

    from masklab.io.atomic import atomic_path

    dest = folder.with_suffix(".zip")
    with atomic_path(dest) as tmp:
        shutil.make_archive(str(tmp.with_suffix("")), "zip", folder)
        os.replace(str(tmp.with_suffix("")) + ".zip", tmp)
    return dest
