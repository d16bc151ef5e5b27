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


def register_all(app, ctx: Ctx) -> None:
    from masklab.app.routes import annotations, images, models, projects, session

    for module in (session, projects, images, annotations, models):
        module.register(app, ctx)
