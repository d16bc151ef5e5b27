"""The app's routes, one module per area; each module's ``register(app, ctx)`` adds its
routes to the app.

- ``session``: who is asking, log-in and log-out, user accounts, server info
- ``projects``: projects, their classes and attributes, the paged image list, import, export
- ``images``: one image, its annotations, frames, review status, history, undo and redo
- ``annotations``: create, change, delete; polygons, alpha mattes, cut-outs
- ``models``: the segmenter, embeddings, prompts, segment-everything, text, tracking
- ``jobs``: background jobs (import, export, pre-labelling, tracking): start, progress, cancel
"""

# (no ``from __future__ import annotations`` here: it would shadow the submodule of that name)
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Query, Request


@dataclass
class Ctx:
    """What the routes share: the store, the segmenter, the configuration, the principal
    dependencies (``who``: anyone logged in; ``admin``), the error response maker and the
    embedding prefetcher."""

    store: Any
    seg: Any
    cfg: Any
    who: Callable
    admin: Callable
    err: Callable
    prefetch: Callable
    jobs: Any = None


def image_filter(request: Request, status: str | None = None, assignee: str | None = None,
                 annotated: bool | None = None, proposals: bool | None = None,
                 q: str | None = Query(None, max_length=500), frames: str = "first",
                 sort: str = "name"):
    """The image list's filter from the query string (``assignee``: a user id, ``me`` or
    ``none``; ``q``: the file name contains it)."""
    return filter_from({"status": status, "assignee": assignee, "annotated": annotated,
                        "proposals": proposals, "q": q, "frames": frames, "sort": sort},
                       request.state.principal)


def filter_from(values: dict, principal, **defaults):
    """An ``ImageFilter`` from query-style values (as the list's query string, or a job's
    ``filter``)."""
    from masklab.app.store import ImageFilter
    from masklab.errors import InputError

    v = {**defaults, **{k: x for k, x in values.items() if x is not None and x != ""}}
    unknown = set(v) - {"status", "assignee", "annotated", "proposals", "q", "frames", "sort"}
    if unknown:
        raise InputError(f"unknown filter {', '.join(sorted(unknown))}")
    who = None
    assignee = v.get("assignee")
    if assignee is not None:
        assignee = str(assignee)
        if assignee == "none":
            who = 0
        elif assignee == "me":
            who = principal.user_id
            if who is None:
                raise InputError("assignee=me needs a log-in (this server has no accounts)")
        elif assignee.isdigit():
            who = int(assignee)
        else:
            raise InputError("assignee must be a user id, 'me' or 'none'")

    def flag(name):
        x = v.get(name)
        if x is None or isinstance(x, bool):
            return x
        if str(x).lower() in ("true", "1", "yes"):
            return True
        if str(x).lower() in ("false", "0", "no"):
            return False
        raise InputError(f"{name} must be true or false")

    return ImageFilter(status=v.get("status"), assignee=who, annotated=flag("annotated"),
                       proposals=flag("proposals"), name=v.get("q") or None,
                       frames=v.get("frames", "first"), sort=v.get("sort", "name"))


def register_all(app, ctx: Ctx) -> None:
    from masklab.app.routes import (
        annotations,
        images,
        jobs,
        models,
        projects,
        session,
        trained,
    )

    for module in (session, projects, images, annotations, models, jobs, trained):
        module.register(app, ctx)
