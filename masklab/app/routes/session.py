"""Who is asking: the session, log-in (throttled), log-out, user accounts, server info."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from masklab import __version__
from masklab.app import auth as _auth
from masklab.app import db
from masklab.app.routes import Ctx
from masklab.app.schemas import LoginIn, UserIn
from masklab.app.store import EXPORT_FORMATS
from masklab.app.store.base import IMPORT_FORMATS
from masklab.errors import InputError


def register(app: FastAPI, ctx: Ctx) -> None:
    store, seg, cfg, admin, _err = ctx.store, ctx.seg, ctx.cfg, ctx.admin, ctx.err
    r = APIRouter()

    @r.get("/api/info")
    def info():
        return {"version": __version__, "auth": cfg.auth, "export_formats": EXPORT_FORMATS,
                "import_formats": IMPORT_FORMATS,
                "statuses": db.STATUSES, "roles": db.ROLES,
                "backend": cfg.backend if seg._backend is None else seg.name}

    @r.get("/api/session")
    def session(request: Request):
        p = request.state.principal
        if p is None:
            return {"user": None, "auth": cfg.auth}
        csrf = p.csrf if cfg.auth else (request.cookies.get(_auth.CSRF_COOKIE)
                                        or request.state.new_csrf)
        return {"user": p.name, "role": p.role, "csrf": csrf, "auth": cfg.auth}

    throttle = app.state.login_throttle

    def _too_many(wait: float) -> JSONResponse:
        seconds = max(1, math.ceil(wait))
        r = _err(429, f"too many wrong passwords: try again in {seconds} s")
        r.headers["Retry-After"] = str(seconds)
        return r

    @r.post("/api/login")
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

    @r.post("/api/logout")
    def logout(request: Request, response: Response):
        token = request.cookies.get(_auth.SESSION_COOKIE)
        if token:
            _auth.logout(store, token)
        response.delete_cookie(_auth.SESSION_COOKIE)
        return {"ok": True}

    @r.get("/api/users")
    def list_users(_p=Depends(admin)):
        return _auth.users(store)

    @r.post("/api/users")
    def create_user(body: UserIn, _p=Depends(admin)):
        return _auth.add_user(store, body.name, body.password, body.role)

    app.include_router(r)
