"""The app's HTTP API (FastAPI) and its static front end.

    app = create_app("data/")                 # SQLite in data/masklab.db, GrabCut or SAM
    uvicorn.run(app, host="127.0.0.1", port=8000)

Errors are JSON ``{"detail": "..."}``: 400 bad input, 401 not logged in, 403 not allowed or
outside the import roots, 404 unknown id, 409 stale version (reload and retry), 413 upload too
large, 429 too many wrong passwords (with ``Retry-After``); never a 500 for malformed input.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from masklab.app import auth as _auth
from masklab.app import db
from masklab.app.store import Forbidden, NotFound, StaleVersion, Store
from masklab.errors import MasklabError

_log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# --- the app -------------------------------------------------------------------------------
class AppConfig:
    def __init__(self, data_dir, *, db_url: str | None = None, backend: str = "auto",
                 roots=None, auth: bool = False, device: str = "cpu",
                 max_upload_bytes: int = 64 << 20, max_pixels: int = 100_000_000,
                 prefetch: int = 2, detector: str = "grounding-dino-tiny",
                 video_backend: str = "flow", cache_dir=None, job_threads: int = 1,
                 job_stale: float = 30.0, engine: str = "local", address: str | None = None,
                 ray_workers: int = 2, ray_gpus: float = 0.0):
        self.data_dir = Path(data_dir).resolve()
        self.db_url = db_url or db.sqlite_url(self.data_dir / "masklab.db")
        self.backend, self.device = backend, device
        self.roots = [Path(r).resolve() for r in (roots if roots is not None
                                                  else [self.data_dir])]
        self.auth, self.max_upload_bytes, self.max_pixels = auth, max_upload_bytes, max_pixels
        self.prefetch, self.detector, self.video_backend = prefetch, detector, video_backend
        # the embedding cache: shared by the app processes of one database when they all
        # reach the folder
        self.cache_dir = Path(cache_dir).resolve() if cache_dir else \
            self.data_dir / "cache" / "embeddings"
        self.job_threads, self.job_stale = job_threads, job_stale
        if engine not in ("local", "ray"):
            raise ValueError(f"engine must be local or ray, got {engine!r}")
        self.engine, self.address, self.ray_workers, self.ray_gpus = (engine, address,
                                                                      ray_workers, ray_gpus)


def create_app(data_dir=None, *, config: AppConfig | None = None, **kwargs) -> FastAPI:
    """The FastAPI app over a data folder (created if needed; the schema is migrated)."""
    from masklab import __version__
    from masklab.app.segment import Segmenter

    cfg = config or AppConfig(data_dir, **kwargs)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(cfg.db_url)
    db.migrate(engine)
    store = Store(engine, cfg.data_dir, cfg.roots)
    seg = Segmenter(cfg.backend, device=cfg.device, cache_dir=cfg.cache_dir,
                    detector=cfg.detector)
    from masklab.app.jobs import JobRunner

    runner = JobRunner(store, seg, cfg, threads=cfg.job_threads, stale=cfg.job_stale)
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        seg.start()  # with --backend auto, SAM loads (or downloads) in the background now
        runner.start()  # background jobs; those a stopped server left resume
        yield
        runner.stop()
        seg.close()
        engine.dispose()

    app = FastAPI(title="masklab", version=__version__, lifespan=lifespan,
                  description="masklab's annotation app: projects, images, mask-native "
                              "annotations, SAM prompts, review, export.")
    app.state.store, app.state.segmenter, app.state.config = store, seg, cfg
    app.state.jobs = runner

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
            # WebAssembly (the browser's prompt decoder) compiles under 'wasm-unsafe-eval';
            # no other eval. Cross-origin isolation (COOP + COEP: every resource is ours)
            # gives the decoder threads (SharedArrayBuffer).
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                "script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
                "connect-src 'self'; frame-ancestors 'none'")
            response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
            response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
            response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
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

    def prefetch(image_id: int, include_self: bool) -> None:
        """Embed the image (``include_self``) and the next ones in the background."""
        ids = ([image_id] if include_self else []) + store.neighbours(image_id, cfg.prefetch)
        seg.prefetch([(store.image(i)["sha256"], store.image_path(i)) for i in ids])

    from masklab.app.routes import Ctx, register_all

    app.state.login_throttle = _auth.LoginThrottle()
    register_all(app, Ctx(store=store, seg=seg, cfg=cfg, who=who, admin=admin, err=_err,
                          prefetch=prefetch, jobs=runner))

    # --- the front end -------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    return app

