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
    from masklab.app.store import ImageFilter
    from masklab.errors import InputError

    who = None
    if assignee is not None:
        if assignee == "none":
            who = 0
        elif assignee == "me":
            who = request.state.principal.user_id
            if who is None:
                raise InputError("assignee=me needs a log-in (this server has no accounts)")
        elif assignee.isdigit():
            who = int(assignee)
        else:
            raise InputError("assignee must be a user id, 'me' or 'none'")
    return ImageFilter(status=status, assignee=who, annotated=annotated, proposals=proposals,
                       name=q or None, frames=frames, sort=sort)


def register_all(app, ctx: Ctx) -> None:
    from masklab.app.routes import annotations, images, models, projects, session

    for module in (session, projects, images, annotations, models):
        module.register(app, ctx)
